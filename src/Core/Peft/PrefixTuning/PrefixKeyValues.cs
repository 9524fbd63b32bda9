namespace Peft.Onnx.Core.Peft;

/// <summary>
/// A decoder's prefix-tuning keys and values as the attention reads them, per self-attention layer
/// [heads, <see cref="Length"/>, head_dim] row-major (<see cref="PrefixTuningLayout"/> computes them from
/// prompt_embeddings; the exporter bakes them, the Runtime stacks them for adapters added at run time).
/// </summary>
public sealed record PrefixKeyValues(int Length, int Heads, int HeadDim, float[][] Keys, float[][] Values)
{
    public int NumLayers => Keys.Length;
}
