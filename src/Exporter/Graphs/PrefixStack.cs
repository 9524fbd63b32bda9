using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// The baked prefixes (<see cref="AttentionPrefix"/>: prefix tuning, or prompt tuning / p-tuning keys and values) of
/// several adapters on one base, chosen per row by <see cref="CausalLmContract.AdapterIndex"/> as
/// <see cref="AdapterStack"/> chooses LoRA branches. Every slot is padded to the longest prefix, <see cref="MaxLength"/>;
/// adapters without virtual tokens (LoRA, IA3) and the base (the last slot, which index -1 also reaches) hold zeros.
/// Each row's attention then reads [its prefix, padding, its cache] with the padding masked out, which is the
/// single-adapter graph's attention over [prefix, cache]: masked keys get exactly zero weight.
/// <para>
/// Initializers, per layer i: <c>prompt.stacked.{i}.key_t</c> [n + 1, query_heads, head_dim, MaxLength] (keys transposed,
/// kv heads repeated to the query heads), <c>prompt.stacked.{i}.value</c> [n + 1, query_heads, MaxLength, head_dim];
/// <c>prompt.stacked.mask</c> [n + 1, MaxLength] (int64: a slot's first Length columns 1, the rest 0), joined in front of
/// attention_mask where the single-adapter graph puts its prefix's ones, so ALiBi, the causal mask and mask-derived
/// positions see each row's own prefix; <c>prompt.stacked.position_offset</c> [n + 1] (int64: the slot's Length), added to
/// position_ids by families that take them, since the single-adapter graph places real token t at Length + t.
/// </para>
/// </summary>
public sealed class PrefixStack
{
    private readonly AttentionPrefix?[] _slots;

    /// <param name="prefixes">Per adapter, in index order, its prefix; null for an adapter without virtual tokens.</param>
    public PrefixStack(IReadOnlyList<AttentionPrefix?> prefixes)
    {
        _slots = [.. prefixes];
        var present = _slots.Where(p => p != null).Select(p => p!).ToList();
        if (present.Count == 0) throw new ArgumentException("a prefix stack needs at least one adapter with a prefix");
        var first = present[0];
        foreach (var p in present)
            if (p.Heads != first.Heads || p.HeadDim != first.HeadDim || p.NumLayers != first.NumLayers)
                throw new ArgumentException($"prefixes of {p.NumLayers} layers x [{p.Heads}, {p.HeadDim}] and {first.NumLayers} x [{first.Heads}, {first.HeadDim}] in one stack");
        Heads = first.Heads;
        HeadDim = first.HeadDim;
        NumLayers = first.NumLayers;
        MaxLength = present.Max(p => p.Length);
    }

    /// <summary>Adapters stacked (the base slot not counted).</summary>
    public int Count => _slots.Length;

    /// <summary>The longest adapter prefix: every row attends to this many prefix keys, its own padding masked.</summary>
    public int MaxLength { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public int NumLayers { get; }

    public static string KeyName(int layer) => $"prompt.stacked.{layer}.key_t";
    public static string ValueName(int layer) => $"prompt.stacked.{layer}.value";
    public const string MaskName = "prompt.stacked.mask";
    public const string PositionOffsetName = "prompt.stacked.position_offset";

    /// <summary>Checks the prefixes fit a graph's attention (layers, kv heads, head_dim), as <see cref="AttentionPrefix.CheckFits"/>.</summary>
    public void CheckFits(int numLayers, int kvHeads, int headDim)
    {
        foreach (var p in _slots) p?.CheckFits(numLayers, kvHeads, headDim);
    }

    /// <summary>[batch, MaxLength] (each row's slot of the stacked mask, the default index's one slot broadcast) followed by <paramref name="mask"/> along axis 1.</summary>
    internal string ExtendMask(GraphBuilder g, string mask)
    {
        using var _ = g.Scope("prompt_mask");
        var stacked = new long[(Count + 1) * MaxLength];
        for (int k = 0; k < Count; k++)
            if (_slots[k] is { } p) Array.Fill(stacked, 1L, k * MaxLength, p.Length);
        var masks = g.Initializer(MaskName, InitializerData.FromInt64(stacked, Count + 1, MaxLength));
        // expanded: adapter_index left at its default (one -1) broadcasts over any batch
        var rows = g.Op("Expand", [g.Gather(masks, CausalLmContract.AdapterIndex), g.Concat(0, [g.Shape(mask, 0, 1), g.Ints(MaxLength)])]);
        return g.Concat(1, [rows, mask]);
    }

    /// <summary><paramref name="positionIds"/> [batch, seq] plus each row's prefix length.</summary>
    internal string OffsetPositions(GraphBuilder g, string positionIds)
    {
        using var _ = g.Scope("position_ids");
        var offsets = new long[Count + 1];
        for (int k = 0; k < Count; k++) offsets[k] = _slots[k]?.Length ?? 0;
        var stacked = g.Initializer(PositionOffsetName, InitializerData.FromInt64(offsets, Count + 1));
        return g.Add(positionIds, g.Unsqueeze(g.Gather(stacked, CausalLmContract.AdapterIndex), [1]));
    }

    /// <summary>
    /// Each row's prefix of <paramref name="layer"/> for an attention of <paramref name="queryHeads"/> heads: keys transposed
    /// [batch, queryHeads, head_dim, MaxLength], values [batch, queryHeads, MaxLength, head_dim].
    /// </summary>
    internal PrefixKv Constants(GraphBuilder g, int layer, int queryHeads)
    {
        if (queryHeads % Heads != 0) throw new ArgumentException($"{queryHeads} query heads are not a multiple of the prefixes' {Heads} key/value heads");
        int groups = queryHeads / Heads, n = Count + 1, per = queryHeads * MaxLength * HeadDim;
        var keys = new float[n * per];
        var values = new float[n * per];
        for (int k = 0; k < Count; k++)
        {
            if (_slots[k] is not { } p) continue;
            var key = p.Repeated(p.Keys[layer], groups, transpose: true);      // [queryHeads, head_dim, Length]
            var value = p.Repeated(p.Values[layer], groups, transpose: false); // [queryHeads, Length, head_dim]
            for (int h = 0; h < queryHeads; h++)
            {
                for (int d = 0; d < HeadDim; d++)
                    Array.Copy(key, (h * HeadDim + d) * p.Length, keys, k * per + (h * HeadDim + d) * MaxLength, p.Length);
                Array.Copy(value, h * p.Length * HeadDim, values, k * per + h * MaxLength * HeadDim, p.Length * HeadDim);
            }
        }
        using var _ = g.Scope("prompt");
        var keysT = g.Initializer(KeyName(layer), InitializerData.FromFloats(keys, n, queryHeads, HeadDim, MaxLength));
        var vals = g.Initializer(ValueName(layer), InitializerData.FromFloats(values, n, queryHeads, MaxLength, HeadDim));
        return new PrefixKv(g.Gather(keysT, CausalLmContract.AdapterIndex, name: "key/Gather"),
            g.Gather(vals, CausalLmContract.AdapterIndex, name: "value/Gather"), MaxLength);
    }
}
