using System.Collections.Frozen;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// LoRA left unmerged (export --no-merge), a graph option as a baked prefix is: the base weight stays as it is and
/// each target gets a side branch <c>x @ A^T @ B^T * scaling</c> added to its output, as PEFT's Linear.forward
/// computes it. A and B are initializers of their own, named after the module and stored as MatMul operands like the
/// base weights: <c>{path}.lora_A.weight</c> [in, r] (A transposed), <c>{path}.lora_B.weight</c> [r, out]
/// (B transposed) and <c>{path}.lora_scaling</c> (a float32 scalar), so one graph structure serves any adapter of the
/// same shapes (swap the initializers, e.g. with SessionOptions.AddInitializer). lora_bias adds
/// <c>{path}.lora_B.bias</c> [out] to B's output; DoRA scales the base product by <c>{path}.lora_magnitude_scale</c>
/// minus one and the LoRA term by it (the factor is constant once the adapter is trained: the norm is detached).
/// A merged lora_bias adapter on a module without a bias keeps only <c>{path}.lora_bias</c> (the scaled bias).
/// </summary>
public sealed class LoraBranches
{
    private readonly FrozenDictionary<string, LoraBranch> _byPath;
    private readonly AdapterStack? _stack;

    public LoraBranches(IEnumerable<LoraBranch> branches) =>
        _byPath = branches.ToFrozenDictionary(b => b.Path, StringComparer.Ordinal);

    /// <summary>Several adapters chosen per row (<see cref="AdapterStack"/>) instead of one adapter's branches.</summary>
    public LoraBranches(AdapterStack stack)
    {
        _byPath = FrozenDictionary<string, LoraBranch>.Empty;
        _stack = stack;
    }

    /// <summary>The per-row adapter stack, when the graph takes an adapter index.</summary>
    public AdapterStack? Stack => _stack;

    public static string AName(string path) => path + ".lora_A.weight";
    public static string BName(string path) => path + ".lora_B.weight";
    public static string ScalingName(string path) => path + ".lora_scaling";
    public static string BiasName(string path) => path + ".lora_B.bias";
    public static string MagnitudeScaleName(string path) => path + ".lora_magnitude_scale";
    public static string AddedBiasName(string path) => path + ".lora_bias";

    /// <summary>True when the adapter has a branch on the module at <paramref name="path"/>.</summary>
    internal bool Targets(string path) => _stack?.Targets(path) ?? _byPath.ContainsKey(path);

    /// <summary>
    /// The branch added to the output of the linear module <paramref name="spec"/> for input <paramref name="x"/>,
    /// null when the adapter does not target it. <paramref name="baseProduct"/> is the module's x @ W (bias not
    /// added, float or quantized), which DoRA's constant per-output factor rescales. Nodes go into the builder's
    /// current scope (the module's).
    /// </summary>
    internal string? Build(GraphBuilder g, LinearSpec spec, string x, string baseProduct)
    {
        if (_stack != null) return _stack.Build(g, spec, x, baseProduct);
        if (!_byPath.TryGetValue(spec.Path, out var t)) return null;
        long r = t.Rank, inF = spec.InFeatures, outF = spec.OutFeatures;
        if (t.BiasOnly)
        {
            var scaled = t.Bias!.Select(v => (float)(v * t.Scaling)).ToArray();
            return g.Initializer(AddedBiasName(spec.Path), InitializerData.FromFloats(scaled, outF));
        }
        var a = g.Initializer(AName(spec.Path), InitializerData.DeferredFloats([inF, r], () => WeightSource.Transpose(t.A, (int)r, (int)inF)));
        var b = g.Initializer(BName(spec.Path), InitializerData.DeferredFloats([r, outF], () => WeightSource.Transpose(t.B, (int)outF, (int)r)));
        var s = g.Initializer(ScalingName(spec.Path), InitializerData.Scalar((float)t.Scaling));
        var down = g.MatMul(x, a, name: "lora_A/MatMul");
        var up = g.MatMul(down, b, name: "lora_B/MatMul");
        if (t.Bias is not null) up = g.Add(up, g.Initializer(BiasName(spec.Path), InitializerData.FromFloats(t.Bias, outF)), name: "lora_B/Add");
        var lora = g.Mul(up, s, name: "lora_scaling/Mul");
        if (t.MagnitudeScale is null) return lora;
        var f = g.Initializer(MagnitudeScaleName(spec.Path), InitializerData.FromFloats(t.MagnitudeScale, outF));
        var scaledBase = g.Mul(baseProduct, g.Sub(f, g.Constant(1f), name: "dora/Sub"), name: "dora/base/Mul");
        return g.Add(scaledBase, g.Mul(lora, f, name: "dora/lora/Mul"), name: "dora/Add");
    }
}
