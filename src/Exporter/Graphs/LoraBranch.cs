namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// One unmerged LoRA module: A [rank, in] and B [out, rank] in PEFT's nn.Linear layouts, and the scaling its output
/// is multiplied by.
/// </summary>
public sealed record LoraBranch(string Path, int Rank, float[] A, float[] B, double Scaling);
