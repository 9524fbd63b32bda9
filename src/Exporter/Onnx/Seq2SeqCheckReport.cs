namespace Peft.Onnx.Exporter.Onnx;

/// <summary>What <see cref="OnnxCheck.Seq2Seq(string, string)"/> ran.</summary>
public sealed record Seq2SeqCheckReport(int NumDecoderLayers, int NumHeads, int HeadDim, int DModel, int VocabSize,
    long[] EncoderOutputShape, long[] FirstStepLogitsShape, long[] DecodeLogitsShape);
