using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Building blocks shared by the family graphs. Each names its nodes under the module's path and its
/// initializers by the Hugging Face parameter names.
/// </summary>
public static class Layers
{
    /// <summary>
    /// nn.Linear (or GPT-2's Conv1D) as MatMul + Add. The weight initializer is stored [in, out]
    /// (nn.Linear's [out, in] transposed at export; Conv1D is already [in, out]) under the HF weight name.
    /// </summary>
    public static string Linear(GraphBuilder g, WeightSource weights, LinearSpec spec, string x, string? output = null)
    {
        using var _ = g.Scope(ModulePath.ToScope(spec.Path));
        var w = g.Initializer(spec.WeightName, spec.IsConv1D ? weights.AsIs(spec.WeightName) : weights.Transposed(spec.WeightName));
        if (!spec.HasBias) return g.MatMul(x, w, output: output);
        var y = g.MatMul(x, w);
        var b = g.Initializer(spec.BiasName, weights.AsIs(spec.BiasName));
        return g.Add(y, b, output: output);
    }

    /// <summary>nn.LayerNorm over the last axis: LayerNormalization with {path}.weight / {path}.bias.</summary>
    public static string LayerNorm(GraphBuilder g, WeightSource weights, string modulePath, string x, double epsilon)
    {
        using var _ = g.Scope(ModulePath.ToScope(modulePath));
        var scale = g.Initializer(modulePath + ".weight", weights.AsIs(modulePath + ".weight"));
        var bias = g.Initializer(modulePath + ".bias", weights.AsIs(modulePath + ".bias"));
        return g.LayerNormalization(x, scale, bias, (float)epsilon);
    }

    /// <summary>nn.Embedding: Gather rows of {path}.weight [vocab, hidden] by ids.</summary>
    public static string Embedding(GraphBuilder g, WeightSource weights, string modulePath, string ids)
    {
        using var _ = g.Scope(ModulePath.ToScope(modulePath));
        var table = g.Initializer(modulePath + ".weight", weights.AsIs(modulePath + ".weight"));
        return g.Gather(table, ids);
    }

    /// <summary>
    /// Output head tied to an embedding table [vocab, hidden] that is already an initializer: logits =
    /// hidden @ table^T as Gemm(transB) over [batch*seq, hidden], so the table is stored once.
    /// <paramref name="batchSeqShape"/> is the 1-D int64 [batch, seq] to restore.
    /// </summary>
    public static string TiedHead(GraphBuilder g, string scope, string table, string hidden, long hiddenSize, long vocabSize, string batchSeqShape, string output)
    {
        using var _ = g.Scope(scope);
        var flat = g.Reshape(hidden, [-1, hiddenSize]);
        var logits = g.Gemm(flat, table, transB: true);
        var shape = g.Concat(0, [batchSeqShape, g.Ints(vocabSize)]);
        return g.Reshape(logits, shape, output: output);
    }

    /// <summary>
    /// tanh-approximated GELU in BLOOM's form (bloom_gelu_forward):
    /// x * 0.5 * (1 + tanh(0.79788456 * x * (1 + 0.044715 * x * x))), same operation order.
    /// </summary>
    public static string BloomGelu(GraphBuilder g, string x)
    {
        using var _ = g.Scope("gelu");
        var inner = g.Mul(g.Mul(g.Constant(0.044715f), x), x);
        var onePlusInner = g.Add(g.Constant(1f), inner);
        var arg = g.Mul(g.Mul(g.Constant(0.79788456f), x), onePlusInner);
        var onePlusTanh = g.Add(g.Constant(1f), g.Tanh(arg));
        return g.Mul(g.Mul(x, g.Constant(0.5f)), onePlusTanh);
    }
}
