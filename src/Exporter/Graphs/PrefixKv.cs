namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// One layer's baked prefix as the attention reads it (<see cref="AttentionPrefix.Constants"/>): keys transposed
/// [1, heads, head_dim, Length], values [1, heads, Length, head_dim].
/// </summary>
public sealed record PrefixKv(string KeysTransposed, string Values, int Length);
