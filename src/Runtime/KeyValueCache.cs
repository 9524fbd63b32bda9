namespace Peft.Onnx.Runtime;

/// <summary>
/// A key/value cache copied out of a graph: per layer [batch, heads, length, head_dim] as float32 (float16 caches are
/// converted at the boundary, exactly).
/// </summary>
public sealed record KeyValueCache(int Batch, int Length, float[][] Keys, float[][] Values)
{
    /// <summary>A cache of length 0 (the first step) for <paramref name="layers"/> layers.</summary>
    public static KeyValueCache Empty(int batch, int layers) =>
        new(batch, 0, Enumerable.Range(0, layers).Select(_ => Array.Empty<float>()).ToArray(),
            Enumerable.Range(0, layers).Select(_ => Array.Empty<float>()).ToArray());
}
