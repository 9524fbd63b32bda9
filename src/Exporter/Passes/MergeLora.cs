using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>One LoRA target with its adapter matrices: A [r, in], B [out, r] (PEFT's nn.Linear layouts).</summary>
public sealed record LoraTarget(TargetMatch Match, float[] A, float[] B)
{
    public LinearSpec Linear => Match.Linear;
    public int Rank => Match.Rank;

    /// <summary>
    /// Reads and checks the LoRA tensors of every target of <paramref name="config"/> in <paramref name="arch"/>:
    /// lora_A [r, in_features] and lora_B [out_features, r], r from rank_pattern or r.
    /// </summary>
    public static IReadOnlyList<LoraTarget> ReadAll(LoraConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var result = new List<LoraTarget>();
        foreach (var t in config.FindTargets(arch))
        {
            if (!weights.Contains(t.Linear.WeightName))
                throw new Core.PeftOnnxException($"{adapter.Dir}: the adapter targets '{t.Path}', whose weight is tied to the input embeddings in this base; exporting an adapted tied head is not supported");
            var what = $"'{t.Path}' (in {t.Linear.InFeatures}, out {t.Linear.OutFeatures}, r {t.Rank})";
            var a = adapter.Read(AdapterWeights.KeyOf(t.Path, "lora_A.weight"), [t.Rank, t.Linear.InFeatures], what);
            var b = adapter.Read(AdapterWeights.KeyOf(t.Path, "lora_B.weight"), [t.Linear.OutFeatures, t.Rank], what);
            result.Add(new LoraTarget(t, a, b));
        }
        return result;
    }
}

/// <summary>
/// PEFT's LoRA merge (lora/layer.py Linear.merge, get_delta_weight): W' = W + scaling * (B @ A) for each target,
/// scaling = lora_alpha / r (alpha / sqrt(r) with use_rslora), the delta transposed for GPT-2's Conv1D whose weight
/// is stored [in, out] (fan_in_fan_out). Done in float32 with double accumulation as each weight streams to the
/// data file; the bias is unchanged.
/// </summary>
public sealed class MergeLora : WeightPass
{
    private readonly Dictionary<string, LoraTarget> _byWeight;

    private MergeLora(WeightSource inner, IReadOnlyList<LoraTarget> targets) : base(inner) =>
        _byWeight = targets.ToDictionary(t => t.Linear.WeightName, StringComparer.Ordinal);

    public IReadOnlyCollection<LoraTarget> Targets => _byWeight.Values;

    /// <summary>Checks the adapter against the base and wraps <paramref name="weights"/> with the merge.</summary>
    public static MergeLora Apply(LoraConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights) =>
        new(weights, LoraTarget.ReadAll(config, arch, adapter, weights));

    protected override bool Changes(string name) => _byWeight.ContainsKey(name);

    protected override float[] Compute(string name)
    {
        var t = _byWeight[name];
        var w = Inner.ReadFloat32(name);
        AddDelta(w, t.A, t.B, t.Rank, checked((int)t.Linear.InFeatures), checked((int)t.Linear.OutFeatures), t.Match.Scaling, t.Linear.IsConv1D);
        return w;
    }

    /// <summary>
    /// w += scaling * (B @ A), w laid out [out, in] (nn.Linear) or [in, out] (<paramref name="conv1D"/>); A [r, in],
    /// B [out, r]. Each delta element is summed in double, scaled and rounded to float32 once, then added.
    /// </summary>
    public static void AddDelta(float[] w, float[] a, float[] b, int rank, int inFeatures, int outFeatures, double scaling, bool conv1D)
    {
        if (w.LongLength != (long)inFeatures * outFeatures) throw new ArgumentException("weight size does not match in x out");
        Parallel.For(0, outFeatures, o =>
        {
            var delta = new double[inFeatures];
            for (int k = 0; k < rank; k++)
            {
                double bk = b[(long)o * rank + k];
                if (bk == 0) continue;
                long row = (long)k * inFeatures;
                for (int i = 0; i < inFeatures; i++) delta[i] += bk * a[row + i];
            }
            for (int i = 0; i < inFeatures; i++)
            {
                long at = conv1D ? (long)i * outFeatures + o : (long)o * inFeatures + i;
                w[at] += (float)(delta[i] * scaling);
            }
        });
    }
}

/// <summary>
/// LoRA left unmerged (export --no-merge): the base weight stays as it is and each target gets a side branch
/// <c>x @ A^T @ B^T * scaling</c> added to its output, as PEFT's Linear.forward computes it. A and B are initializers
/// of their own, named after the module and stored as MatMul operands like the base weights:
/// <c>{path}.lora_A.weight</c> [in, r] (A transposed), <c>{path}.lora_B.weight</c> [r, out] (B transposed) and
/// <c>{path}.lora_scaling</c> (a float32 scalar), so one graph structure serves any adapter of the same shapes (swap
/// the initializers, e.g. with SessionOptions.AddInitializer).
/// </summary>
public sealed class UnmergedLora : WeightPass
{
    private readonly Dictionary<string, LoraTarget> _byPath;

    private UnmergedLora(WeightSource inner, IReadOnlyList<LoraTarget> targets) : base(inner) =>
        _byPath = targets.ToDictionary(t => t.Linear.Path, StringComparer.Ordinal);

    public static string AName(string path) => path + ".lora_A.weight";
    public static string BName(string path) => path + ".lora_B.weight";
    public static string ScalingName(string path) => path + ".lora_scaling";

    /// <summary>Checks the adapter against the base and wraps <paramref name="weights"/> with the side branches.</summary>
    public static UnmergedLora Apply(LoraConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights) =>
        new(weights, LoraTarget.ReadAll(config, arch, adapter, weights));

    protected override bool Changes(string name) => false;

    protected override float[] Compute(string name) => throw new InvalidOperationException();

    public override string? LinearBranch(GraphBuilder g, LinearSpec spec, string x)
    {
        var inner = Inner.LinearBranch(g, spec, x);
        if (!_byPath.TryGetValue(spec.Path, out var t)) return inner;
        long r = t.Rank, inF = spec.InFeatures, outF = spec.OutFeatures;
        var a = g.Initializer(AName(spec.Path), InitializerData.DeferredFloats([inF, r], () => Transpose(t.A, (int)r, (int)inF)));
        var b = g.Initializer(BName(spec.Path), InitializerData.DeferredFloats([r, outF], () => Transpose(t.B, (int)outF, (int)r)));
        var s = g.Initializer(ScalingName(spec.Path), InitializerData.Scalar((float)t.Match.Scaling));
        var down = g.MatMul(x, a, name: "lora_A/MatMul");
        var up = g.MatMul(down, b, name: "lora_B/MatMul");
        var branch = g.Mul(up, s, name: "lora_scaling/Mul");
        return inner == null ? branch : g.Add(inner, branch);
    }
}
