namespace Peft.Onnx.Exporter.Quantization;

/// <summary>
/// Quantized export: every linear layer's weight, the output head included unless <paramref name="KeepHeadFloat"/>,
/// becomes a MatMulNBits of <paramref name="Format"/> computed at <paramref name="AccuracyLevel"/> (0: float32 compute
/// of the dequantized weight; 4: activations quantized to int8 per block, ONNX Runtime's fastest CPU kernels).
/// The head takes <paramref name="HeadFormat"/> where given (a mixed precision: an int8 head over an int4 body, as
/// llama.cpp keeps output.weight at a higher precision, since the head's error goes straight into the logits).
/// Embeddings and norms stay float32.
/// </summary>
public sealed record WeightQuantization(QuantizationFormat Format, int AccuracyLevel = WeightQuantization.DefaultAccuracyLevel, bool KeepHeadFloat = false,
    QuantizationFormat? HeadFormat = null)
{
    /// <summary>
    /// The head's format when none is asked for: int8 over an int4 body (on the main job it lifts int4's top-1
    /// agreement with the float32 model more than any block size does; see README), the body's own otherwise.
    /// </summary>
    public static QuantizationFormat? DefaultHeadFormat(QuantizationFormat body) => body.Bits == 4 ? body with { Bits = 8 } : null;

    /// <summary>The head's format: <see cref="HeadFormat"/>, or the body's <see cref="Format"/>.</summary>
    public QuantizationFormat HeadOrBodyFormat => HeadFormat ?? Format;

    /// <summary>The fastest level on the CPU for both int8 and int4, and within the accuracy goals (see README).</summary>
    public const int DefaultAccuracyLevel = 4;

    /// <summary>Throws a one-line error naming the bad value unless every setting is one MatMulNBits takes.</summary>
    public WeightQuantization Validated()
    {
        Format.Validated();
        HeadFormat?.Validated();
        if (KeepHeadFloat && HeadFormat != null) throw new Core.PeftOnnxException("a head format was given for a head kept float32 (give one or the other)");
        if (AccuracyLevel is < 0 or > 4) throw new Core.PeftOnnxException($"accuracy level {AccuracyLevel} is not supported (expected 0, 1, 2, 3 or 4)");
        return this;
    }
}
