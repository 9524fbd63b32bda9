using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// The baked prefixes (<see cref="AttentionPrefix"/>: prefix tuning, or prompt tuning / p-tuning keys and values) of
/// several adapters on one base, chosen per row by <see cref="CausalLmContract.AdapterIndex"/> as
/// <see cref="AdapterStack"/> chooses LoRA branches. Every slot is padded to the longest prefix, <see cref="MaxLength"/>;
/// adapters without virtual tokens (LoRA, IA3) and the base (the last slot, which index -1 also reaches) hold zeros.
/// Each row's attention then reads [padding, its prefix, its cache] with the padding masked out, which is the
/// single-adapter graph's attention over [prefix, cache]: masked keys get exactly zero weight, and the padding goes in
/// front so that every distance between a virtual token and a real one is the single-adapter graph's (T5's relative
/// position bias depends on it).
/// <para>
/// Initializers, per layer i: <c>prompt.stacked.{i}.key_t</c> [n + 1, query_heads, head_dim, MaxLength] (keys transposed,
/// kv heads repeated to the query heads), <c>prompt.stacked.{i}.value</c> [n + 1, query_heads, MaxLength, head_dim];
/// <c>prompt.stacked.mask</c> [n + 1, MaxLength] (int64: a slot's last Length columns 1, the rest 0), joined in front of
/// attention_mask where the single-adapter graph puts its prefix's ones, so ALiBi, the causal mask and mask-derived
/// positions see each row's own prefix; <c>prompt.stacked.position_offset</c> [n + 1] (int64: the slot's Length), added to
/// position_ids by families that take them, since the single-adapter graph places real token t at Length + t.
/// </para>
/// <para>
/// <see cref="Overridable"/> (decoder-only graphs): each of these is also a graph input whose default it is, the slot
/// count and the prefix length symbolic (<see cref="PrefixStackNames"/>), so the Runtime can feed grown copies holding
/// adapters added at run time; the mask and the attention then take the prefix length from the stacks' shapes. The keys and values
/// always go to the data file (<see cref="StackNames"/>), where adapters.json records their offsets.
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
        if (present.Count == 0) throw new ArgumentException("a prefix stack needs at least one adapter with a prefix (or use Reserved)");
        var first = present[0];
        foreach (var p in present)
            if (p.Heads != first.Heads || p.HeadDim != first.HeadDim || p.NumLayers != first.NumLayers)
                throw new ArgumentException($"prefixes of {p.NumLayers} layers x [{p.Heads}, {p.HeadDim}] and {first.NumLayers} x [{first.Heads}, {first.HeadDim}] in one stack");
        Heads = first.Heads;
        HeadDim = first.HeadDim;
        NumLayers = first.NumLayers;
        MaxLength = present.Max(p => p.Length);
    }

    private PrefixStack(int count, int numLayers, int heads, int headDim)
    {
        _slots = new AttentionPrefix?[count];
        NumLayers = numLayers;
        Heads = heads;
        HeadDim = headDim;
        // one position, masked in every slot: a row attends to it with exactly zero weight, so rows answer as without it
        MaxLength = 1;
    }

    /// <summary>
    /// Stacks for <paramref name="count"/> adapters none of which has virtual tokens, overridable, so prefix-tuning
    /// adapters can be added at run time to an export of LoRA and IA3 adapters.
    /// </summary>
    public static PrefixStack Reserved(int count, int numLayers, int kvHeads, int headDim) =>
        new(count, numLayers, kvHeads, headDim) { Overridable = true };

    /// <summary>Adapters stacked (the base slot not counted).</summary>
    public int Count => _slots.Length;

    /// <summary>The longest adapter prefix: every row attends to this many prefix keys, its own padding masked.</summary>
    public int MaxLength { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public int NumLayers { get; }

    public static string KeyName(int layer) => PrefixStackNames.Key(layer);
    public static string ValueName(int layer) => PrefixStackNames.Value(layer);
    public const string MaskName = PrefixStackNames.Mask;
    public const string PositionOffsetName = PrefixStackNames.PositionOffset;

    /// <summary>Whether the stacks are graph inputs with defaults (decoder-only graphs), so that their slots and length may grow.</summary>
    public bool Overridable { get; init; }

    private readonly List<string> _stackNames = [];

    /// <summary>The stacked keys and values the graph holds (filled as the graph is built): what goes to the data file.</summary>
    public IReadOnlyList<string> StackNames => _stackNames;

    /// <summary>The prefix length each row attends to as a [1] int64 tensor (<see cref="Overridable"/> stacks), made once per graph.</summary>
    private (GraphBuilder Graph, string Length)? _length;

    /// <summary>A stack as an initializer, and when <see cref="Overridable"/> also a graph input of these dims whose default it is.</summary>
    private string Stacked(GraphBuilder g, string name, InitializerData data, ElementType type, params Dim[] rest)
    {
        if (Overridable) g.Input(name, type, [Dim.Symbolic("adapter_slots"), .. rest]);
        return g.Initializer(name, data);
    }

    private static Dim PrefixLength => Dim.Symbolic("prefix_length");

    /// <summary>Checks the prefixes fit a graph's attention (layers, kv heads, head_dim), as <see cref="AttentionPrefix.CheckFits"/>.</summary>
    public void CheckFits(int numLayers, int kvHeads, int headDim)
    {
        foreach (var p in _slots) p?.CheckFits(numLayers, kvHeads, headDim);
    }

    /// <summary>[batch, MaxLength] (each row's slot of the stacked mask, the default index's one slot broadcast) followed by <paramref name="mask"/> along axis 1.</summary>
    internal string ExtendMask(GraphBuilder g, string mask)
    {
        using var _ = g.Scope("prompt_mask");
        // expanded: adapter_index left at its default (one -1) broadcasts over any batch
        var rowMask = RowMask(g);
        var width = Overridable ? g.Shape(rowMask, 1, 2) : g.Ints(MaxLength);
        var rows = g.Op("Expand", [rowMask, g.Concat(0, [g.Shape(mask, 0, 1), width])]);
        return g.Concat(1, [rows, mask]);
    }

    /// <summary>Each row's slot of the stacked mask, [batch (1 for the default index), MaxLength] int64; once per graph.</summary>
    internal string RowMask(GraphBuilder g)
    {
        var stacked = new long[(Count + 1) * MaxLength];
        for (int k = 0; k < Count; k++)
            if (_slots[k] is { } p) Array.Fill(stacked, 1L, (k + 1) * MaxLength - p.Length, p.Length);
        var masks = Stacked(g, MaskName, InitializerData.FromInt64(stacked, Count + 1, MaxLength), ElementType.Int64, PrefixLength);
        return g.Gather(masks, CausalLmContract.AdapterIndex);
    }

    /// <summary>Whether some adapter's prefix has a cross-attention part (encoder-decoder prefix tuning with two submodules).</summary>
    public bool HasCross => _slots.Any(p => p?.CrossKeys != null);

    /// <summary>
    /// Encoder-decoders: per row, decoder layer <paramref name="layer"/>'s cross keys (or values) as
    /// <see cref="AttentionPrefix.SelectCross"/> picks them for the row's adapter: its prefix's cross part where the row's
    /// encoder input is exactly its Length long, else <paramref name="computed"/> [batch, heads, promptLength + S,
    /// head_dim]. The row's length is its count of ones in <paramref name="attentionMask"/> [batch, S] (the input's own
    /// mask), so a row gets what the single-adapter export gives it alone, whatever the batch is padded to (PEFT's rule
    /// reads the padded length). The first <paramref name="promptLength"/> positions (other adapters' encoder prompts,
    /// masked for this row) are kept as computed; cross positions past the row's prefix are masked as padding.
    /// </summary>
    internal string SelectCross(GraphBuilder g, int layer, string computed, bool value, string attentionMask, int promptLength)
    {
        if (!HasCross) return computed;
        using var _ = g.Scope(value ? "value/prompt" : "key/prompt");
        int n = Count + 1, per = Heads * MaxLength * HeadDim;
        var data = new float[n * per];
        var lengths = new long[n];
        Array.Fill(lengths, -1L);
        for (int k = 0; k < Count; k++)
        {
            if (_slots[k] is not { CrossKeys: not null, CrossValues: not null } p) continue;
            var source = value ? p.CrossValues[layer] : p.CrossKeys[layer];     // [heads, Length, head_dim]
            for (int h = 0; h < Heads; h++)
                Array.Copy(source, h * p.Length * HeadDim, data, k * per + h * MaxLength * HeadDim, p.Length * HeadDim);
            lengths[k] = p.Length;
        }
        // slots padded at the back here: a row's prefix sits where its real encoder positions are (the first Length of S)
        var stacked = g.Initializer(value ? CrossValueName(layer) : CrossKeyName(layer), InitializerData.FromFloats(data, n, Heads, MaxLength, HeadDim));
        var rows = g.Gather(stacked, CausalLmContract.AdapterIndex);                                   // [batch, heads, MaxLength, d]
        var s = g.Shape(attentionMask, 1, 2);                                                           // [1]
        var indices = g.Op("Min", [g.Range(g.Constant(0L), g.Squeeze(s, [0]), g.Constant(1L)), g.Constant((long)MaxLength - 1)]);
        var fitted = g.Gather(rows, indices, axis: 2);                                                  // [batch, heads, S, d]
        var shape = g.Concat(0, [g.Shape(computed, 0, 1), g.Ints(Heads), s, g.Ints(HeadDim)]);
        fitted = g.Op("Expand", [fitted, shape]);
        if (promptLength > 0) fitted = g.Concat(2, [g.Op("Slice", [computed, g.Ints(0), g.Ints(promptLength), g.Ints(2)]), fitted]);
        var rowLengths = g.Gather(g.Constant(InitializerData.FromInt64(lengths, n)), CausalLmContract.AdapterIndex);   // [batch]
        var real = g.Op("ReduceSum", [attentionMask, g.Ints(1)], Attr.Int("keepdims", 0));                          // [batch]
        var same = g.Reshape(g.Op("Equal", [rowLengths, real]), [-1, 1, 1, 1]);
        return g.Where(same, fitted, computed);
    }

    public static string CrossKeyName(int layer) => $"prompt.stacked.{layer}.cross_key";
    public static string CrossValueName(int layer) => $"prompt.stacked.{layer}.cross_value";

    /// <summary><paramref name="positionIds"/> [batch, seq] plus each row's prefix length.</summary>
    internal string OffsetPositions(GraphBuilder g, string positionIds)
    {
        using var _ = g.Scope("position_ids");
        var offsets = new long[Count + 1];
        for (int k = 0; k < Count; k++) offsets[k] = _slots[k]?.Length ?? 0;
        var stacked = Stacked(g, PositionOffsetName, InitializerData.FromInt64(offsets, Count + 1), ElementType.Int64);
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
            int pad = MaxLength - p.Length;
            for (int h = 0; h < queryHeads; h++)
            {
                for (int d = 0; d < HeadDim; d++)
                    Array.Copy(key, (h * HeadDim + d) * p.Length, keys, k * per + (h * HeadDim + d) * MaxLength + pad, p.Length);
                Array.Copy(value, h * p.Length * HeadDim, values, k * per + (h * MaxLength + pad) * HeadDim, p.Length * HeadDim);
            }
        }
        using var _ = g.Scope("prompt");
        var keysT = Stacked(g, KeyName(layer), InitializerData.FromFloats(keys, n, queryHeads, HeadDim, MaxLength), ElementType.Float, queryHeads, HeadDim, PrefixLength);
        var vals = Stacked(g, ValueName(layer), InitializerData.FromFloats(values, n, queryHeads, MaxLength, HeadDim), ElementType.Float, queryHeads, PrefixLength, HeadDim);
        _stackNames.Add(KeyName(layer));
        _stackNames.Add(ValueName(layer));
        return new PrefixKv(g.Gather(keysT, CausalLmContract.AdapterIndex, name: "key/Gather"),
            g.Gather(vals, CausalLmContract.AdapterIndex, name: "value/Gather"), MaxLength, Overridable ? LengthOf(g, vals) : null);
    }

    /// <summary>The prefix length as [1] int64, from the stacked values' shape; one Shape per graph.</summary>
    private string LengthOf(GraphBuilder g, string values)
    {
        if (_length is { } known && ReferenceEquals(known.Graph, g)) return known.Length;
        var length = g.Shape(values, 2, 3);
        _length = (g, length);
        return length;
    }
}
