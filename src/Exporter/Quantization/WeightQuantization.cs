using Peft.Onnx.Core;
namespace Peft.Onnx.Exporter.Quantization;

/// <summary>
/// Quantized export: every linear layer's weight, the output head included unless <paramref name="KeepHeadFloat"/>,
/// becomes a MatMulNBits of <paramref name="Format"/> computed at <paramref name="AccuracyLevel"/> (0: float32 compute
/// of the dequantized weight; 4: activations quantized to int8 per block, ONNX Runtime's fastest CPU kernels).
/// The head takes <paramref name="HeadFormat"/> and the attention modules' linear layers <paramref name="AttentionFormat"/>
/// where given: a mixed precision, int8 head and attention over an int4 MLP, as llama.cpp's Q4_K_M keeps output.weight
/// and parts of attention at more bits (the head's error goes straight into the logits; on the main job the attention
/// projections' rounding moves the answers more than the MLP's, see README). Embeddings and norms stay float32.
/// </summary>
public sealed record WeightQuantization(QuantizationFormat Format, int AccuracyLevel = WeightQuantization.DefaultAccuracyLevel, bool KeepHeadFloat = false,
    QuantizationFormat? HeadFormat = null, QuantizationFormat? AttentionFormat = null)
{
    /// <summary>
    /// The head's format when none is asked for: int8 over an int4 body (on the main job it lifts int4's top-1
    /// agreement with the float32 model more than any block size does; see README), the body's own otherwise.
    /// </summary>
    public static QuantizationFormat? DefaultHeadFormat(QuantizationFormat body) => body.Bits == 4 ? body with { Bits = 8 } : null;

    /// <summary>The attention layers' format when none is asked for: int8 in an int4 export, the body's own otherwise.</summary>
    public static QuantizationFormat? DefaultAttentionFormat(QuantizationFormat body) => DefaultHeadFormat(body);

    /// <summary>The head's format: <see cref="HeadFormat"/>, or the body's <see cref="Format"/>.</summary>
    public QuantizationFormat HeadOrBodyFormat => HeadFormat ?? Format;

    /// <summary>The attention layers' format: <see cref="AttentionFormat"/>, or the body's <see cref="Format"/>.</summary>
    public QuantizationFormat AttentionOrBodyFormat => AttentionFormat ?? Format;

    /// <summary>The fastest level on the CPU for both int8 and int4, and within the accuracy goals (see README).</summary>
    public const int DefaultAccuracyLevel = 4;

    /// <summary>Throws a one-line error naming the bad value unless every setting is one MatMulNBits takes.</summary>
    /// <summary>
    /// The export's quantization from its command-line settings (null without <paramref name="bits"/>; a setting
    /// without it is refused rather than ignored), validated; errors name the option.
    /// </summary>
    public static WeightQuantization? FromOptions(string? bits, int? blockSize, bool asymmetric, int? accuracyLevel, bool keepHeadFloat, bool quantizeHead, string? headBits,
        string? attentionBits = null)
    {
        if (bits == null)
        {
            var stray = new (string Name, bool Given)[]
            {
                ("block-size", blockSize != null), ("asymmetric", asymmetric), ("accuracy-level", accuracyLevel != null),
                ("keep-head-float", keepHeadFloat), ("quantize-head", quantizeHead), ("head-quantize", headBits != null),
                ("attention-quantize", attentionBits != null),
            }.FirstOrDefault(o => o.Given).Name;
            if (stray != null) throw new PeftOnnxException($"export: --{stray} needs --quantize int8|int4");
            return null;
        }
        if (keepHeadFloat && quantizeHead)
            throw new PeftOnnxException("export: --keep-head-float and --quantize-head contradict each other (give one: the head float32, or quantized as by default)");
        if (keepHeadFloat && headBits != null)
            throw new PeftOnnxException("export: --head-quantize and --keep-head-float contradict each other (give one: the head's width, or the head float32)");
        int width = Bits("quantize", bits);
        var format = new QuantizationFormat(width, blockSize ?? QuantizationFormat.DefaultBlockSizeFor(width), !asymmetric);
        var headFormat = headBits != null ? format with { Bits = Bits("head-quantize", headBits) }
            : keepHeadFloat ? null : DefaultHeadFormat(format);
        var attentionFormat = attentionBits != null ? format with { Bits = Bits("attention-quantize", attentionBits) } : DefaultAttentionFormat(format);
        try
        {
            return new WeightQuantization(format, accuracyLevel ?? DefaultAccuracyLevel, keepHeadFloat, headFormat, attentionFormat).Validated();
        }
        catch (PeftOnnxException ex)
        {
            throw new PeftOnnxException($"export: {ex.Message}");
        }
    }

    private static int Bits(string option, string value) => value switch
    {
        "int8" => 8,
        "int4" => 4,
        _ => throw new PeftOnnxException($"export: --{option} '{value}' is not supported (expected int8 or int4)"),
    };

    public WeightQuantization Validated()
    {
        Format.Validated();
        HeadFormat?.Validated();
        AttentionFormat?.Validated();
        if (KeepHeadFloat && HeadFormat != null) throw new Core.PeftOnnxException("a head format was given for a head kept float32 (give one or the other)");
        if (AccuracyLevel is < 0 or > 4) throw new Core.PeftOnnxException($"accuracy level {AccuracyLevel} is not supported (expected 0, 1, 2, 3 or 4)");
        return this;
    }
}
