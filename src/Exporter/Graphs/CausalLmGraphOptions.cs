using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Options of the decoder-only family graphs (see <see cref="FamilyGraphs.BuildCausal"/>). The defaults build the
/// base graph of <see cref="CausalLmInterface"/>.
/// </summary>
public sealed record CausalLmGraphOptions
{
    /// <summary>
    /// Take inputs_embeds [batch, seq, hidden] (float, what the word embedding would return) instead of input_ids.
    /// Used at export time to run the base model on soft-prompt embeddings.
    /// </summary>
    public bool TakeInputsEmbeds { get; init; }

    /// <summary>
    /// Constant keys/values before the real tokens (see <see cref="AttentionPrefix"/>). Real tokens then sit at
    /// positions Length + past + t: families that take position_ids compute them in the graph (no position_ids
    /// input, as PEFT drops position_ids and transformers uses arange(past, past + seq)); the others derive them from
    /// the mask with the prefix's ones in front.
    /// </summary>
    public AttentionPrefix? Prefix { get; init; }

    /// <summary>
    /// Carry <see cref="Prefix"/> in the KV cache (present = [prefix, past, new] on the first step) instead of attending
    /// to it beside the cache: the graph the Runtime runs, written beside model.onnx (<see cref="CausalLmContract.PrefixInCacheFile"/>).
    /// </summary>
    public bool PrefixInCache { get; init; }

    /// <summary>LoRA kept unmerged: side branches beside the targeted modules (see <see cref="LoraBranches"/>).</summary>
    public LoraBranches? Lora { get; init; }

    /// <summary>
    /// Several adapters' prefixes chosen per row by adapter_index (<see cref="PrefixStack"/>), instead of one
    /// <see cref="Prefix"/>: attended beside the cache, joined to the mask per row, position_ids (still declared) offset per row.
    /// </summary>
    public PrefixStack? Prefixes { get; init; }

    public static readonly CausalLmGraphOptions Default = new();

    /// <summary>The mask the attention, ALiBi and positions use: attention_mask, with the prefix's ones prepended.</summary>
    internal string AttentionMask(GraphBuilder g) =>
        Prefixes != null ? Prefixes.ExtendMask(g, CausalLmContract.AttentionMask)
        : Prefix == null ? CausalLmContract.AttentionMask : Prefix.ExtendMask(g, CausalLmContract.AttentionMask);

    /// <summary>The token input: input_ids, or inputs_embeds [batch, seq, hidden].</summary>
    internal string Tokens => TakeInputsEmbeds ? CausalLmContract.InputsEmbeds : CausalLmContract.InputIds;

    /// <summary>Whether the graph declares position_ids (families that take them, unless a prefix makes them implicit).</summary>
    internal bool DeclaresPositionIds => Prefix == null;

    /// <summary>
    /// Declares the interface: as <see cref="CausalLmInterface.Declare(GraphBuilder,int,int,int,int,bool)"/>, with
    /// inputs_embeds in place of input_ids when asked, and position_ids only where <see cref="DeclaresPositionIds"/>.
    /// </summary>
    internal void Declare(GraphBuilder g, int numLayers, int numKvHeads, int headDim, int vocabSize, bool positionIds, int hidden)
    {
        if (!TakeInputsEmbeds)
        {
            CausalLmInterface.Declare(g, numLayers, numKvHeads, headDim, vocabSize, positionIds && DeclaresPositionIds);
            DeclareAdapterIndex(g);
            return;
        }
        g.Input(CausalLmContract.InputsEmbeds, ElementType.Float, Dims.Batch, Dims.Sequence, hidden);
        g.Input(CausalLmContract.AttentionMask, ElementType.Int64, Dims.Batch, Dims.TotalSequence);
        if (positionIds && DeclaresPositionIds) g.Input(CausalLmContract.PositionIds, ElementType.Int64, Dims.Batch, Dims.Sequence);
        CausalLmInterface.DeclarePastAndOutputs(g, numLayers, numKvHeads, headDim, vocabSize);
        DeclareAdapterIndex(g);
    }

    /// <summary>
    /// adapter_index [batch] where <see cref="Lora"/> or <see cref="Prefixes"/> stacks several adapters: an overridable initializer of one -1
    /// (every row on the base) so that callers unaware of adapters run the graph unchanged.
    /// </summary>
    private void DeclareAdapterIndex(GraphBuilder g)
    {
        if (Lora?.Stack == null && Prefixes == null) return;
        g.Input(CausalLmContract.AdapterIndex, ElementType.Int64, Dims.Batch);
        g.Initializer(CausalLmContract.AdapterIndex, InitializerData.FromInt64([-1L], 1));
    }

    /// <summary>
    /// position_ids [batch or 1, seq]: the input when declared, else Length + past .. Length + past + seq - 1
    /// (transformers' arange(past_length, past_length + seq) with the prefix counted in the past). A prefix-in-cache
    /// graph starts at max(past, Length): Length on the first step, past afterwards (the cache then counts the prefix).
    /// </summary>
    internal string PositionIds(GraphBuilder g)
    {
        if (Prefixes != null) return Prefixes.OffsetPositions(g, CausalLmContract.PositionIds);
        if (DeclaresPositionIds) return CausalLmContract.PositionIds;
        using var _ = g.Scope("position_ids");
        var past = g.Squeeze(g.Shape(CausalLmContract.PastKey(0), 2, 3), [0]);
        var length = g.Constant((long)Prefix!.Length);
        var start = PrefixInCache ? g.Op("Max", [past, length]) : g.Add(past, length);
        var seq = g.Squeeze(g.Shape(Tokens, 1, 2), [0]);
        return g.Unsqueeze(g.Range(start, g.Add(start, seq), g.Constant(1L)), [0]);
    }

    /// <summary>Whether attention reads a constant prefix beside the cache (<see cref="PrefixConstants"/> is not null).</summary>
    internal bool AttendsPrefixBesideCache => Prefixes != null || (Prefix != null && !PrefixInCache);

    /// <summary>The layer's constant prefix, attended beside the cache by an attention of <paramref name="queryHeads"/> heads; null without one or when the cache carries it.</summary>
    internal PrefixKv? PrefixConstants(GraphBuilder g, int layer, int queryHeads) =>
        !AttendsPrefixBesideCache ? null : Prefixes != null ? Prefixes.Constants(g, layer, queryHeads) : Prefix!.Constants(g, layer, queryHeads);

    /// <summary>Per layer the prefix keys (2i) and values (2i + 1) that go in front of the cache (<see cref="AttentionPrefix.CacheHeads"/>); null unless the cache carries a prefix.</summary>
    internal IReadOnlyList<string>? PrefixCache(GraphBuilder g, int numLayers) =>
        PrefixInCache ? Prefix?.CacheHeads(g, Tokens, CausalLmContract.PastKey(0), numLayers) : null;

    /// <summary>The same prefix in front of the first step's own keys and values (<see cref="AttentionPrefix.CacheTokens"/>), for attention nodes that append to the cache themselves.</summary>
    internal IReadOnlyList<string>? PrefixCacheTokens(GraphBuilder g, int numLayers) =>
        PrefixInCache ? Prefix?.CacheTokens(g, Tokens, CausalLmContract.PastKey(0), numLayers) : null;

    /// <summary>
    /// What a family whose attention can run as one MultiHeadAttention node per layer (<see cref="CachedAttention"/>)
    /// reads: the mask as one additive bias (<paramref name="additive"/>, or 0, where <paramref name="allowed"/>; see
    /// <see cref="Attention.MaskedBias"/>) and the cache-carried prefix in token layout. Where a constant prefix is
    /// attended beside the cache, the attention is spelled out: no bias, and the prefix cache in heads layout.
    /// </summary>
    internal (string? Bias, IReadOnlyList<string>? PrefixCache) CachedAttentionInputs(GraphBuilder g, string? additive, string allowed, int numLayers) =>
        AttendsPrefixBesideCache
            ? (null, PrefixCache(g, numLayers))
            : (Attention.MaskedBias(g, additive ?? g.Constant(0f), allowed), PrefixCacheTokens(g, numLayers));

    /// <summary>
    /// Layer <paramref name="layer"/>'s attention over this step's q, k, v [batch, seq, heads * head_dim] as one
    /// MultiHeadAttention node (<see cref="Attention.MultiHead"/>) that appends k and v to the layer's cache; with
    /// <paramref name="prefixTokens"/> (<see cref="PrefixCacheTokens"/>) the cache-carried prefix goes in front of the
    /// first step's k and v (empty afterwards). Returns [batch, seq, heads * head_dim].
    /// </summary>
    internal static string CachedAttention(GraphBuilder g, IReadOnlyList<string>? prefixTokens, int layer, string q, string k, string v, string bias, int heads, float scale)
    {
        string WithPrefix(string x, int index, string name) => prefixTokens == null ? x : g.Concat(1, [prefixTokens[index], x], name: name);
        return Attention.MultiHead(g, q, WithPrefix(k, 2 * layer, "key/prompt_cache"), WithPrefix(v, 2 * layer + 1, "value/prompt_cache"), bias,
            CausalLmContract.PastKey(layer), CausalLmContract.PastValue(layer), heads, scale, CausalLmContract.PresentKey(layer), CausalLmContract.PresentValue(layer));
    }

    /// <summary>present = [prefix (first step only), past, current] along the sequence axis; [past, current] without a cache-carried prefix.</summary>
    internal static string AppendToCache(GraphBuilder g, IReadOnlyList<string>? prefixCache, int index, string past, string current, string present, string name) =>
        prefixCache == null
            ? Attention.AppendToCache(g, past, current, present, name)
            : g.Concat(2, [prefixCache[index], past, current], name: name, output: present);
}
