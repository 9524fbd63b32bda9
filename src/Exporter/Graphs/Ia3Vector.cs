namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// One IA3 target kept apart from the weights: the learned vector scales the module's inputs [in]
/// (<paramref name="Feedforward"/>) or its outputs, bias included [out].
/// </summary>
public sealed record Ia3Vector(string Path, float[] L, bool Feedforward);
