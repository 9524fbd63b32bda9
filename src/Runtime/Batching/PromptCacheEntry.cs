namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// One prefilled prompt: per past input its cache row [heads, lead + length, head_dim] as raw bytes (a baked prompt's
/// virtual tokens first, then the prompt's positions, no padding), the mask over the prompt's positions and the
/// logits of its last position (which the row's first token is chosen from).
/// </summary>
internal sealed record PromptCacheEntry(byte[][] Past, long[] Mask, float[] Logits)
{
    /// <summary>Positions after the lead (the prompt's length).</summary>
    public int Length => Mask.Length;

    /// <summary>The bytes the entry holds (what the cache's bound counts).</summary>
    public long Bytes { get; } = Past.Sum(p => (long)p.Length) + Mask.Length * sizeof(long) + Logits.Length * sizeof(float);
}
