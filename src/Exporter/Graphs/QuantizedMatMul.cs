using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Quantization;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// x @ W as com.microsoft MatMulNBits over a block-quantized weight (see <see cref="QuantizedMatrix"/>). Initializers
/// are named as ONNX Runtime's quantizer names them: {weight}_Q{bits}, {weight}_scales, {weight}_zero_points.
/// </summary>
public static class QuantizedMatMul
{
    public const string Domain = "com.microsoft";

    /// <summary>The weight of the linear module <paramref name="spec"/>, quantized per output along its inputs.</summary>
    public static QuantizedMatrix ForLinear(QuantizingWeights weights, LinearSpec spec) =>
        // nn.Linear stores [out, in] (rows are outputs already); Conv1D stores [in, out] and is read transposed
        new(spec.IsConv1D ? weights.Transposed(spec.WeightName).Values! : weights.AsIs(spec.WeightName).Values!,
            spec.OutFeatures, spec.InFeatures, weights.FormatOf(spec.WeightName));

    /// <summary>Adds the initializers of <paramref name="matrix"/> under <paramref name="weightName"/>.</summary>
    public static QuantizedWeightInputs AddWeight(GraphBuilder g, QuantizedMatrix matrix, string weightName)
    {
        var format = matrix.Format;
        List<string> names =
        [
            g.Initializer($"{weightName}_Q{format.Bits}", matrix.Codes),
            g.Initializer($"{weightName}_scales", matrix.Scales),
        ];
        if (!format.Symmetric) names.Add(g.Initializer($"{weightName}_zero_points", matrix.ZeroPoints));
        return new QuantizedWeightInputs(names, matrix.K, matrix.N, format);
    }

    /// <summary>The MatMulNBits node: <paramref name="x"/> [..., K] @ the weight -> [..., N].</summary>
    public static string Apply(GraphBuilder g, QuantizedWeightInputs weight, int accuracyLevel, string x, string? output = null) =>
        g.Node("MatMulNBits", [x, .. weight.Names], outputs: output == null ? null : [output], domain: Domain, attributes:
        [
            Attr.Int("K", weight.K),
            Attr.Int("N", weight.N),
            Attr.Int("bits", weight.Format.Bits),
            Attr.Int("block_size", weight.Format.BlockSize),
            Attr.Int("accuracy_level", accuracyLevel),
        ])[0];
}
