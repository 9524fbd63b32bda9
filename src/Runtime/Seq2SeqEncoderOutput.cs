namespace Peft.Onnx.Runtime;

/// <summary>
/// What the encoder graph returned for a batch: last_hidden_state [batch, cross_length, d_model] and, per decoder
/// layer, the cross-attention keys/values [batch, heads, cross_length, head_dim] the decoder takes as
/// past_key_values.{i}.encoder.*. <see cref="AttentionMask"/> [batch, Length] is the caller's encoder mask, which
/// the decoder takes as encoder_attention_mask. <see cref="CrossLength"/> equals <see cref="Length"/> except for a
/// baked encoder soft prompt (prompt tuning / p-tuning), whose outputs are num_virtual_tokens + Length long.
/// </summary>
public sealed record Seq2SeqEncoderOutput(int Batch, int Length, long[] AttentionMask, float[] LastHiddenState, float[][] CrossKeys, float[][] CrossValues)
{
    private readonly int? _crossLength;

    /// <summary>Length of the encoder outputs (from their shape), >= <see cref="Length"/>.</summary>
    public int CrossLength { get => _crossLength ?? Length; init => _crossLength = value; }

    /// <summary>Per row the adapter the encoder ran with (multi-adapter exports), which the decoder must take too; null: the base.</summary>
    public long[]? AdapterIndices { get; init; }
}
