namespace Peft.Onnx.Exporter.Onnx;

/// <summary>How a checked graph holds its large weights, which decides the check's ONNX Runtime session.</summary>
public enum CheckWeights
{
    /// <summary>Float weight products (or a large one among quantized ones): used in place, never pre-packed.</summary>
    Float,

    /// <summary>Every large weight product is a MatMulNBits: pre-packed once rather than dequantized on every run.</summary>
    Quantized,
}
