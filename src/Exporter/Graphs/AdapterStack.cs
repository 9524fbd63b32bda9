using System.Collections.Frozen;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Several LoRA (DoRA) and IA3 adapters on one base, chosen per row by <see cref="CausalLmContract.AdapterIndex"/>, in
/// one of two <see cref="LoraStackLayout"/>s. Rows (the default): per targeted module a zero row, then every adapter's A
/// rows (PEFT's [rank, in]) one after another, <c>{path}.lora_A.stacked</c> [1 + sum of ranks, in], and likewise B^T with
/// the scaling folded in, <c>{path}.lora_B.stacked</c> [1 + sum of ranks, out]; a row's branch is x @ A[idx]^T @ B[idx],
/// its indices idx the row of <c>{first module}.lora_rows.stacked</c> [adapters + 1, largest rank] its adapter index picks
/// (gathered once per graph and layout; padded with 0, the zero row; the base's last row all 0, which index -1 also
/// reaches): no base slot and no rank padding in the stored tensors. Gather: A and B stacked along a leading axis of
/// adapter count + 1 (the last slot all zeros: the base), ranks padded with zeros to the module's largest; a row's branch
/// is x @ Gather(A, index) @ Gather(B, index). In both, lora_B's bias, DoRA's factor and IA3's vector are
/// [adapters + 1, out] stacks gathered per row (zeros or ones in the base slot and in the slots of adapters without
/// them; they are small): <c>{path}.lora_B.bias_stacked</c>, <c>{path}.lora_magnitude_scale_stacked</c>,
/// <c>{path}.ia3_l.stacked</c>. Each stack is also a graph input whose default it is (slot counts and ranks symbolic),
/// so the Runtime can feed grown copies holding adapters added at run time; the stacks always go to the data file
/// (<see cref="StackNames"/>), where adapters.json records their offsets.
/// </summary>
public sealed class AdapterStack
{
    private readonly FrozenDictionary<string, LoraBranch?[]> _byPath;
    private readonly FrozenDictionary<string, Ia3Vector?[]> _ia3ByPath;

    /// <param name="adapters">Per adapter, in index order, its LoRA branches (one per targeted module).</param>
    /// <param name="ia3">Per adapter, in the same order, its IA3 vectors (empty for a LoRA adapter); null: none.</param>
    /// <param name="layout">How LoRA's A and B are held (<see cref="LoraStackLayout"/>).</param>
    public AdapterStack(IReadOnlyList<IReadOnlyList<LoraBranch>> adapters, IReadOnlyList<IReadOnlyList<Ia3Vector>>? ia3 = null,
        LoraStackLayout layout = LoraStackLayout.Rows)
    {
        Layout = layout;
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

    public LoraStackLayout Layout { get; }

    public static string AName(string path) => AdapterStackNames.Name(path, AdapterStackKind.LoraA);
    public static string BName(string path) => AdapterStackNames.Name(path, AdapterStackKind.LoraB);
    public static string BiasName(string path) => AdapterStackNames.Name(path, AdapterStackKind.LoraBias);
    public static string MagnitudeScaleName(string path) => AdapterStackNames.Name(path, AdapterStackKind.DoraScale);
    public static string RowTableName(string firstPath) => AdapterStackNames.Name(firstPath, AdapterStackKind.LoraRows);

    private readonly List<string> _stackNames = [];

    /// <summary>The stacked tensors the graph holds, in the order they were added (filled as the graph is built).</summary>
    public IReadOnlyList<string> StackNames => _stackNames;

    private readonly Dictionary<string, List<string>> _tableUsers = new(StringComparer.Ordinal);

    /// <summary>Per row-layout index table (<see cref="AdapterStackKind.LoraRows"/>), the modules whose LoRA rows it indexes (filled as the graph is built).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> RowTableUsers => _tableUsers.ToDictionary(m => m.Key, m => (IReadOnlyList<string>)m.Value, StringComparer.Ordinal);

    /// <summary>Per graph, per row layout (which adapters with which ranks, in order), its table's name and each row's indices [batch, largest rank].</summary>
    private readonly Dictionary<GraphBuilder, Dictionary<string, (string Name, string Index)>> _tables = new(ReferenceEqualityComparer.Instance);

    /// <summary>A stack as an overridable initializer: a graph input [slots, ...] (the slot count and a rank symbolic) with <paramref name="data"/> as its default.</summary>
    private string Stacked(GraphBuilder g, string name, InitializerData data, params Dim[] rest) =>
        Overridable(g, name, data, [Dim.Symbolic("adapter_slots"), .. rest]);

    /// <summary>An overridable initializer of shape <paramref name="shape"/> with <paramref name="data"/> as its default.</summary>
    private string Overridable(GraphBuilder g, string name, InitializerData data, Dim[] shape)
    {
        g.Input(name, ElementType.Float, shape);
        if (!_stackNames.Contains(name)) _stackNames.Add(name);
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
        int outF = checked((int)spec.OutFeatures), n = Count + 1;
        var up = Layout == LoraStackLayout.Rows ? RowsProduct(g, spec, x, slots) : GatherProduct(g, spec, x, slots);
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

    /// <summary>The gather layout's x @ Gather(A, index) @ Gather(B, index), ranks padded to the largest, a zero base slot last.</summary>
    private string GatherProduct(GraphBuilder g, LinearSpec spec, string x, LoraBranch?[] slots)
    {
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
        return g.MatMul(down, g.Gather(b, CausalLmContract.AdapterIndex, name: "lora_B/Gather"), name: "lora_B/MatMul");
    }

    /// <summary>
    /// The row layout's branch: each row's rows of A [rank, in] and B^T [rank, out] gathered by its row of the index table
    /// (padded to the layout's largest rank with row 0, all zeros), x @ A^T @ B^T.
    /// </summary>
    private string RowsProduct(GraphBuilder g, LinearSpec spec, string x, LoraBranch?[] slots)
    {
        int inF = checked((int)spec.InFeatures), outF = checked((int)spec.OutFeatures);
        var blocks = slots.Select((t, k) => (Branch: t!, Slot: k)).Where(p => p.Branch != null).ToList();
        int rows = 1 + blocks.Sum(p => p.Branch.Rank);
        var (tableName, index) = RowTable(g, spec.Path, blocks.Select(p => (p.Slot, p.Branch.Rank)).ToList());
        var rowCount = Dim.Symbolic(tableName + ".rows");
        var a = Overridable(g, AName(spec.Path), InitializerData.DeferredFloats([rows, inF], () =>
        {
            var cat = new float[(long)rows * inF];
            long offset = inF;
            foreach (var (t, _) in blocks)
            {
                Array.Copy(t.A, 0, cat, offset, (long)t.Rank * inF);
                offset += (long)t.Rank * inF;
            }
            return cat;
        }), [rowCount, inF]);
        var b = Overridable(g, BName(spec.Path), InitializerData.DeferredFloats([rows, outF], () =>
        {
            var cat = new float[(long)rows * outF];
            long first = 1;
            foreach (var (t, _) in blocks)
            {
                float s = (float)t.Scaling;
                for (int j = 0; j < t.Rank; j++)
                    for (int o = 0; o < outF; o++) cat[(first + j) * outF + o] = t.B[(long)o * t.Rank + j] * s;
                first += t.Rank;
            }
            return cat;
        }), [rowCount, outF]);
        // [batch, r, in] transposed into the MatMul: ORT folds the Transpose into a FusedMatMul (transB)
        var aRows = g.Transpose(g.Gather(a, index, name: "lora_A/Gather"), [0, 2, 1], name: "lora_A/Transpose");
        var down = g.MatMul(x, aRows, name: "lora_A/MatMul");
        return g.MatMul(down, g.Gather(b, index, name: "lora_B/Gather"), name: "lora_B/MatMul");
    }

    /// <summary>
    /// The index table of a row layout (per block, the slot owning it and its rank) in graph <paramref name="g"/>: made at
    /// the first module with that layout (named after it), each row's indices [batch, largest rank] gathered once and shared
    /// by every later module with it. Row k of the table lists slot k's rows (block k starts after row 0 and the blocks
    /// before it), padded with 0; the last row, the base's (index -1), is all 0. Float32, as every stack, cast once.
    /// </summary>
    private (string Name, string Index) RowTable(GraphBuilder g, string path, List<(int Slot, int Rank)> blocks)
    {
        if (!_tables.TryGetValue(g, out var tables)) _tables[g] = tables = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        var key = string.Join(",", blocks.Select(b => $"{b.Slot}:{b.Rank}"));
        if (tables.TryGetValue(key, out var known))
        {
            _tableUsers[known.Name].Add(path);
            return known;
        }
        int width = blocks.Max(b => b.Rank), n = Count + 1;
        var values = new float[n * width];
        int first = 1;
        foreach (var (slot, rank) in blocks)
        {
            for (int j = 0; j < rank; j++) values[slot * width + j] = first + j;
            first += rank;
        }
        var name = RowTableName(path);
        var table = Overridable(g, name, InitializerData.FromFloats(values, n, width), [Dim.Symbolic("adapter_slots"), Dim.Symbolic(name + ".rank")]);
        _tableUsers[name] = [path];
        var index = g.Cast(g.Gather(table, CausalLmContract.AdapterIndex, name: "lora_rows/Gather"), ElementType.Int64, name: "lora_rows/Cast");
        tables[key] = (name, index);
        return (name, index);
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
