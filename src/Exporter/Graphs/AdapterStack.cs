using System.Collections.Frozen;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Several LoRA (DoRA) and IA3 adapters on one base, chosen per row by <see cref="CausalLmContract.AdapterIndex"/>: per targeted
/// module the adapters' A and B stacked along a leading axis of adapter count + 1 (the last slot all zeros: the base,
/// which index -1 also reaches), ranks padded with zeros to the module's largest, the scaling folded into B. A row's
/// branch is x @ Gather(A, index) @ Gather(B, index) (a batched MatMul); lora_B's bias and DoRA's factor are stacked the
/// same way (zeros and ones in the slots of adapters without them). Initializers: <c>{path}.lora_A.stacked</c>
/// [n + 1, in, r], <c>{path}.lora_B.stacked</c> [n + 1, r, out], <c>{path}.lora_B.bias_stacked</c> [n + 1, out],
/// <c>{path}.lora_magnitude_scale_stacked</c> [n + 1, out]. Each stack is also a graph input whose default it is (the
/// slot count and the rank symbolic), so the Runtime can feed grown copies holding adapters added at run time; the
/// stacks always go to the data file (<see cref="StackNames"/>), where adapters.json records their offsets.
/// </summary>
public sealed class AdapterStack
{
    private readonly FrozenDictionary<string, LoraBranch?[]> _byPath;
    private readonly FrozenDictionary<string, Ia3Vector?[]> _ia3ByPath;

    /// <param name="adapters">Per adapter, in index order, its LoRA branches (one per targeted module).</param>
    /// <param name="ia3">Per adapter, in the same order, its IA3 vectors (empty for a LoRA adapter); null: none.</param>
    public AdapterStack(IReadOnlyList<IReadOnlyList<LoraBranch>> adapters, IReadOnlyList<IReadOnlyList<Ia3Vector>>? ia3 = null)
    {
        if (ia3 != null && ia3.Count != adapters.Count) throw new ArgumentException($"{ia3.Count} IA3 lists for {adapters.Count} adapters");
        var ia3ByPath = new Dictionary<string, Ia3Vector?[]>(StringComparer.Ordinal);
        for (int k = 0; k < (ia3?.Count ?? 0); k++)
            foreach (var v in ia3![k])
            {
                if (!ia3ByPath.TryGetValue(v.Path, out var slots)) ia3ByPath[v.Path] = slots = new Ia3Vector?[adapters.Count];
                slots[k] = v;
            }
        foreach (var (path, slots) in ia3ByPath)
            if (slots.Any(v => v != null && v.Feedforward != slots.First(x => x != null)!.Feedforward))
                throw new Core.PeftOnnxException($"'{path}': one adapter scales its inputs (feed-forward) and another its outputs; stack them in separate exports");
        _ia3ByPath = ia3ByPath.ToFrozenDictionary(StringComparer.Ordinal);
        Count = adapters.Count;
        var byPath = new Dictionary<string, LoraBranch?[]>(StringComparer.Ordinal);
        for (int k = 0; k < adapters.Count; k++)
            foreach (var branch in adapters[k])
            {
                if (branch.BiasOnly) throw new ArgumentException($"{branch.Path}: a merged bias term has no place in a stacked export");
                if (!byPath.TryGetValue(branch.Path, out var slots)) byPath[branch.Path] = slots = new LoraBranch?[Count];
                slots[k] = branch;
            }
        _byPath = byPath.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>Adapters stacked (the base slot not counted).</summary>
    public int Count { get; }

    public static string AName(string path) => AdapterStackNames.Name(path, AdapterStackKind.LoraA);
    public static string BName(string path) => AdapterStackNames.Name(path, AdapterStackKind.LoraB);
    public static string BiasName(string path) => AdapterStackNames.Name(path, AdapterStackKind.LoraBias);
    public static string MagnitudeScaleName(string path) => AdapterStackNames.Name(path, AdapterStackKind.DoraScale);

    private readonly List<string> _stackNames = [];

    /// <summary>The stacked tensors the graph holds, in the order they were added (filled as the graph is built).</summary>
    public IReadOnlyList<string> StackNames => _stackNames;

    /// <summary>A stack as an overridable initializer: a graph input [slots, ...] (the slot count and a rank symbolic) with <paramref name="data"/> as its default.</summary>
    private string Stacked(GraphBuilder g, string name, InitializerData data, params Dim[] rest)
    {
        g.Input(name, ElementType.Float, [Dim.Symbolic("adapter_slots"), .. rest]);
        _stackNames.Add(name);
        return g.Initializer(name, data);
    }

    internal bool Targets(string path) => _byPath.ContainsKey(path);

    /// <summary>Each row's input scaled by its adapter's feed-forward IA3 vector; null when no adapter scales this module's input.</summary>
    internal string? ScaleInput(GraphBuilder g, LinearSpec spec, string x) =>
        _ia3ByPath.TryGetValue(spec.Path, out var slots) && slots.Any(v => v?.Feedforward == true)
            ? g.Mul(x, Ia3Row(g, spec.Path, slots, checked((int)spec.InFeatures)), name: "ia3/Mul")
            : null;

    /// <summary>Whether some adapter scales this module's output (bias included).</summary>
    internal bool ScalesOutput(string path) => _ia3ByPath.TryGetValue(path, out var slots) && slots.Any(v => v is { Feedforward: false });

    /// <summary>Each row's output <paramref name="y"/> scaled by its adapter's IA3 vector (see <see cref="ScalesOutput"/>).</summary>
    internal string ScaleOutput(GraphBuilder g, LinearSpec spec, string y, string? output) =>
        g.Mul(y, Ia3Row(g, spec.Path, _ia3ByPath[spec.Path], checked((int)spec.OutFeatures)), name: "ia3/Mul", output: output);

    public static string Ia3Name(string path) => AdapterStackNames.Name(path, AdapterStackKind.Ia3);

    private string Ia3Row(GraphBuilder g, string path, Ia3Vector?[] slots, int width)
    {
        var stacked = new float[(Count + 1) * width];
        Array.Fill(stacked, 1f);
        for (int k = 0; k < Count; k++)
            if (slots[k] is { } v) v.L.CopyTo(stacked, k * width);
        return Row(g, Stacked(g, Ia3Name(path), InitializerData.FromFloats(stacked, Count + 1, width), width), "ia3");
    }

    /// <summary>The per-row branch of module <paramref name="spec"/> (see <see cref="LoraBranches.Build"/>), null when no adapter targets it.</summary>
    internal string? Build(GraphBuilder g, LinearSpec spec, string x, string baseProduct)
    {
        if (!_byPath.TryGetValue(spec.Path, out var slots)) return null;
        int inF = checked((int)spec.InFeatures), outF = checked((int)spec.OutFeatures), n = Count + 1;
        int r = slots.Max(t => t?.Rank ?? 0);
        var rank = Dim.Symbolic(spec.Path + ".lora_rank");
        var a = Stacked(g, AName(spec.Path), InitializerData.DeferredFloats([n, inF, r], () =>
        {
            var stacked = new float[(long)n * inF * r];
            for (int k = 0; k < Count; k++)
            {
                if (slots[k] is not { } t) continue;
                for (int j = 0; j < t.Rank; j++)
                    for (int i = 0; i < inF; i++) stacked[((long)k * inF + i) * r + j] = t.A[(long)j * inF + i];
            }
            return stacked;
        }), inF, rank);
        var b = Stacked(g, BName(spec.Path), InitializerData.DeferredFloats([n, r, outF], () =>
        {
            var stacked = new float[(long)n * r * outF];
            for (int k = 0; k < Count; k++)
            {
                if (slots[k] is not { } t) continue;
                float s = (float)t.Scaling;
                for (int o = 0; o < outF; o++)
                    for (int j = 0; j < t.Rank; j++) stacked[((long)k * r + j) * outF + o] = t.B[(long)o * t.Rank + j] * s;
            }
            return stacked;
        }), rank, outF);
        var down = g.MatMul(x, g.Gather(a, CausalLmContract.AdapterIndex, name: "lora_A/Gather"), name: "lora_A/MatMul");
        var up = g.MatMul(down, g.Gather(b, CausalLmContract.AdapterIndex, name: "lora_B/Gather"), name: "lora_B/MatMul");
        if (slots.Any(t => t?.Bias != null))
        {
            var bias = PerOutput(slots, outF, 0f, t => t.Bias?.Select(v => (float)(v * t.Scaling)).ToArray());
            up = g.Add(up, Row(g, Stacked(g, BiasName(spec.Path), InitializerData.FromFloats(bias, n, outF), outF), "lora_B/bias"), name: "lora_B/Add");
        }
        if (slots.All(t => t?.MagnitudeScale == null)) return up;
        var factors = PerOutput(slots, outF, 1f, t => t.MagnitudeScale);
        var f = Row(g, Stacked(g, MagnitudeScaleName(spec.Path), InitializerData.FromFloats(factors, n, outF), outF), "dora");
        var scaledBase = g.Mul(baseProduct, g.Sub(f, g.Constant(1f), name: "dora/Sub"), name: "dora/base/Mul");
        return g.Add(scaledBase, g.Mul(up, f, name: "dora/lora/Mul"), name: "dora/Add");
    }

    /// <summary>[n + 1, out]: each adapter's vector, <paramref name="fill"/> where it has none and in the base slot.</summary>
    private float[] PerOutput(LoraBranch?[] slots, int outF, float fill, Func<LoraBranch, float[]?> vector)
    {
        var stacked = new float[(Count + 1) * outF];
        Array.Fill(stacked, fill);
        for (int k = 0; k < Count; k++)
            if (slots[k] is { } t && vector(t) is { } v) v.CopyTo(stacked, k * outF);
        return stacked;
    }

    /// <summary>Each row's vector of a [n + 1, out] stack, as [batch, 1, out] to broadcast over the sequence.</summary>
    private static string Row(GraphBuilder g, string stacked, string name) =>
        g.Unsqueeze(g.Gather(stacked, CausalLmContract.AdapterIndex, name: name + "/Gather"), [1], name: name + "/Unsqueeze");
}
