namespace Peft.Onnx.Exporter.Onnx;

/// <summary>What <see cref="OnnxCheck.CausalLm(string)"/> ran.</summary>
public sealed record OnnxCheckReport(int NumLayers, int NumHeads, int HeadDim, int VocabSize, long[] PrefillLogitsShape, long[] DecodeLogitsShape);
