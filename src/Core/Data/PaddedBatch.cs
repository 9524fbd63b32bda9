namespace Peft.Onnx.Core.Data;

/// <summary>A padded batch as flat row-major arrays: input_ids / attention_mask [B, T], labels [B, L] (L = T for causal).</summary>
public sealed record PaddedBatch(long[] InputIds, long[] AttentionMask, long[] Shape, long[] Labels, long[] LabelShape)
{
    public int Rows => (int)Shape[0];
}
