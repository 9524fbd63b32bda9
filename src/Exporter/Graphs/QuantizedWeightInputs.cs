using Peft.Onnx.Exporter.Quantization;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>A quantized weight's initializer names in MatMulNBits' input order (codes, scales[, zero points]) and its shape K x N.</summary>
public sealed record QuantizedWeightInputs(IReadOnlyList<string> Names, long K, long N, QuantizationFormat Format);
