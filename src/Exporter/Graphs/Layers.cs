using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Building blocks shared by the family graphs. Each names its nodes under the module's path and its
/// initializers by the Hugging Face parameter names.
/// </summary>
public static class Layers
{
    /// <summary>
    /// nn.Linear (or transformers' Conv1D) as MatMul + Add. The weight initializer is stored [in, out]
    /// (nn.Linear's [out, in] transposed at export; Conv1D is already [in, out]) under the HF weight name, plus the
    /// module's unmerged LoRA branch where <paramref name="lora"/> has one. Weights that a quantized export quantizes
    /// (<see cref="QuantizingWeights"/>) become a MatMulNBits instead (<see cref="QuantizedMatMul"/>); the bias and
    /// the branch stay float32.
    /// </summary>
    public static string Linear(GraphBuilder g, WeightSource weights, LoraBranches? lora, LinearSpec spec, string x, string? output = null)
    {
        using var _ = g.Scope(ModulePath.ToScope(spec.Path));
        var quantizing = weights as QuantizingWeights;
        var stack = lora?.Stack;
        // a stacked IA3 feed-forward vector scales each row's input before anything reads it
        x = stack?.ScaleInput(g, spec, x) ?? x;
        bool scalesOutput = stack?.ScalesOutput(spec.Path) == true;
        // the weight's initializers first (the data file's order), then the branch's
        var quantized = quantizing?.Quantizes(spec.WeightName) == true
            ? QuantizedMatMul.AddWeight(g, QuantizedMatMul.ForLinear(quantizing, spec), spec.WeightName)
            : null;
        var w = quantized == null ? g.Initializer(spec.WeightName, spec.IsConv1D ? weights.AsIs(spec.WeightName) : weights.Transposed(spec.WeightName)) : null;
        string MatMul(string? name) => quantized == null ? g.MatMul(x, w!, output: name) : QuantizedMatMul.Apply(g, quantized, quantizing!.Quantization.AccuracyLevel, x, name);
        // an adapter left unmerged (--no-merge) adds its own term to the module's output: base(x) + branch(x)
        if (!spec.HasBias && lora?.Targets(spec.Path) != true && !scalesOutput) return MatMul(output);
        var y = MatMul(null);
        var branch = lora?.Build(g, spec, x, y);
        // the last node writes the module's output: the bias, the branch, or a stacked IA3 output scale
        if (spec.HasBias)
        {
            var b = g.Initializer(spec.BiasName, weights.AsIs(spec.BiasName));
            y = branch == null && !scalesOutput ? g.Add(y, b, output: output) : g.Add(y, b);
        }
        if (branch != null) y = scalesOutput ? g.Add(y, branch, name: "adapter/Add") : g.Add(y, branch, name: "adapter/Add", output: output);
        return scalesOutput ? stack!.ScaleOutput(g, spec, y, output) : y;
    }

    /// <summary>nn.LayerNorm over the last axis: LayerNormalization with {path}.weight / {path}.bias.</summary>
    public static string LayerNorm(GraphBuilder g, WeightSource weights, string modulePath, string x, double epsilon)
    {
        using var _ = g.Scope(ModulePath.ToScope(modulePath));
        var scale = g.Initializer(modulePath + ".weight", weights.AsIs(modulePath + ".weight"));
        var bias = g.Initializer(modulePath + ".bias", weights.AsIs(modulePath + ".bias"));
        return g.LayerNormalization(x, scale, bias, (float)epsilon);
    }

    /// <summary>
    /// nn.LayerNorm that may lack learned parameters (OPT's layer_norm_elementwise_affine = false): then the
    /// scale and bias are constant ones and zeros of <paramref name="width"/>, which is what the module computes.
    /// </summary>
    public static string LayerNorm(GraphBuilder g, WeightSource weights, string modulePath, string x, double epsilon, long width, bool affine)
    {
        if (affine) return LayerNorm(g, weights, modulePath, x, epsilon);
        using var _ = g.Scope(ModulePath.ToScope(modulePath));
        var ones = new float[width];
        Array.Fill(ones, 1f);
        var scale = g.Constant(InitializerData.FromFloats(ones, width));
        var bias = g.Constant(InitializerData.FromFloats(new float[width], width));
        return g.LayerNormalization(x, scale, bias, (float)epsilon);
    }

    /// <summary>
    /// RMS norm: weight * (x * rsqrt(mean(x^2, last axis) + eps)), with {path}.weight and no bias
    /// (x^2 as x * x, which is what torch's pow(2) computes).
    /// </summary>
    public static string RmsNorm(GraphBuilder g, WeightSource weights, string modulePath, string x, double epsilon)
    {
        using var _ = g.Scope(ModulePath.ToScope(modulePath));
        var weight = g.Initializer(modulePath + ".weight", weights.AsIs(modulePath + ".weight"));
        var variance = g.Op("ReduceMean", [g.Mul(x, x)], Attr.Ints("axes", -1), Attr.Int("keepdims", 1));
        var inverse = g.Op("Reciprocal", [g.Op("Sqrt", [g.Add(variance, g.Constant((float)epsilon))])]);
        return g.Mul(weight, g.Mul(x, inverse));
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
    /// <paramref name="batchSeqShape"/> is the 1-D int64 [batch, seq] to restore. A quantized export
    /// (<see cref="QuantizingWeights"/>) gives the head its own quantized copy of the table, a MatMulNBits over hidden,
    /// while the embedding lookup keeps the float32 table.
    /// </summary>
    public static string TiedHead(GraphBuilder g, WeightSource weights, string scope, string table, string hidden, long hiddenSize, long vocabSize, string batchSeqShape, string output)
    {
        using var _ = g.Scope(scope);
        if (weights is QuantizingWeights q && q.Quantizes(q.HeadWeight))
        {
            var copy = new QuantizedMatrix(weights.AsIs(table).Values!, vocabSize, hiddenSize, q.FormatOf(q.HeadWeight));
            return QuantizedMatMul.Apply(g, QuantizedMatMul.AddWeight(g, copy, q.HeadWeight), q.Quantization.AccuracyLevel, hidden, output);
        }
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

    /// <summary>The activation names <see cref="Activation"/> accepts (transformers 4.33 ACT2FN).</summary>
    public static readonly string[] ActivationNames =
    [
        "gelu", "gelu_python", "gelu_new", "gelu_accurate", "gelu_fast", "gelu_pytorch_tanh", "gelu_10", "quick_gelu",
        "relu", "relu2", "relu6", "leaky_relu", "silu", "swish", "mish", "sigmoid", "tanh", "linear",
    ];

    /// <summary>
    /// transformers' ACT2FN[<paramref name="name"/>] (activations.py, 4.33) in opset-17 ops, each written in the
    /// operation order of its Python/ATen formula. Nodes go under <paramref name="scope"/> (the module's attribute
    /// name: "act", "activation_fn", "act_fn"). "linear" returns <paramref name="x"/> unchanged.
    /// </summary>
    public static string Activation(GraphBuilder g, string name, string x, string scope = "act")
    {
        if (!ActivationNames.Contains(name))
            throw new PeftOnnxException($"activation function '{name}' has no ONNX export (expected one of {string.Join(", ", ActivationNames)})");
        if (name == "linear") return x;
        using var _ = g.Scope(scope);
        switch (name)
        {
            case "gelu":         // torch gelu (erf): x * 0.5 * (1 + erf(x * M_SQRT1_2))
                return g.Mul(g.Mul(x, g.Constant(0.5f)), g.Add(g.Constant(1f), g.Op("Erf", [g.Mul(x, g.Constant((float)(1 / Math.Sqrt(2))))])));
            case "gelu_python":  // x * 0.5 * (1.0 + erf(x / sqrt(2)))
                return g.Mul(g.Mul(x, g.Constant(0.5f)), g.Add(g.Constant(1f), g.Op("Erf", [g.Div(x, g.Constant((float)Math.Sqrt(2)))])));
            case "gelu_new" or "gelu_accurate" or "gelu_pytorch_tanh":
                return TanhGelu(g, x);
            case "gelu_fast":    // 0.5 * x * (1 + tanh(x * 0.7978845608 * (1 + 0.044715 * x * x)))
            {
                var inner = g.Add(g.Constant(1f), g.Mul(g.Mul(g.Constant(0.044715f), x), x));
                var t = g.Tanh(g.Mul(g.Mul(x, g.Constant(0.7978845608f)), inner));
                return g.Mul(g.Mul(g.Constant(0.5f), x), g.Add(g.Constant(1f), t));
            }
            case "gelu_10":      // ClippedGELU(-10, 10) over the erf GELU
            {
                var gelu = g.Mul(g.Mul(x, g.Constant(0.5f)), g.Add(g.Constant(1f), g.Op("Erf", [g.Mul(x, g.Constant((float)(1 / Math.Sqrt(2))))])));
                return g.Op("Clip", [gelu, g.Constant(-10f), g.Constant(10f)]);
            }
            case "quick_gelu":   // x * sigmoid(1.702 * x)
                return g.Mul(x, g.Op("Sigmoid", [g.Mul(g.Constant(1.702f), x)]));
            case "relu":
                return g.Op("Relu", [x]);
            case "relu2":        // relu(x) ** 2
            {
                var r = g.Op("Relu", [x]);
                return g.Mul(r, r);
            }
            case "relu6":
                return g.Op("Clip", [x, g.Constant(0f), g.Constant(6f)]);
            case "leaky_relu":   // nn.LeakyReLU() default negative_slope 0.01
                return g.Op("LeakyRelu", [x], Attr.Float("alpha", 0.01f));
            case "silu" or "swish":
                return g.Mul(x, g.Op("Sigmoid", [x]));
            case "mish":         // x * tanh(softplus(x))
                return g.Mul(x, g.Tanh(g.Op("Softplus", [x])));
            case "sigmoid":
                return g.Op("Sigmoid", [x]);
            default:             // "tanh"
                return g.Tanh(x);
        }
    }

    /// <summary>
    /// NewGELUActivation (gelu_new): 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), with x^3 as
    /// (x * x) * x like ATen's pow(x, 3) and the operations in the Python formula's order.
    /// </summary>
    public static string TanhGelu(GraphBuilder g, string x)
    {
        var cube = g.Mul(g.Mul(x, x), x);
        var inner = g.Add(x, g.Mul(g.Constant(0.044715f), cube));
        var t = g.Tanh(g.Mul(g.Constant((float)Math.Sqrt(2.0 / Math.PI)), inner));
        return g.Mul(g.Mul(g.Constant(0.5f), x), g.Add(g.Constant(1f), t));
    }
}
