namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// One layer's baked prefix as the attention reads it (<see cref="AttentionPrefix.Constants"/>): keys transposed
/// [1, heads, head_dim, Length], values [1, heads, Length, head_dim]. <see cref="LengthTensor"/>: the length as a [1]
/// int64 tensor where it is only known at run time (stacks the Runtime may grow), else null (<see cref="Length"/> holds).
/// </summary>
public sealed record PrefixKv(string KeysTransposed, string Values, int Length, string? LengthTensor = null);
