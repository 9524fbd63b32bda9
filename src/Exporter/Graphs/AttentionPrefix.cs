using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Constant keys and values every self-attention layer attends to before the real tokens: the baked form of a PEFT
/// prefix (prefix tuning) or of soft-prompt tokens whose keys/values were computed at export time (prompt tuning,
/// p-tuning on decoder-only models). Per layer [kv_heads, length, head_dim]; the graph stores them as initializers
/// <c>prompt.past.{i}.key_t</c> [1, heads, head_dim, length] (keys transposed) and <c>prompt.past.{i}.value</c>
/// [1, heads, length, head_dim], with kv heads already repeated to the query heads for grouped-query attention.
/// <para>
/// Two forms of decoder-only graph, both with attention_mask covering only the real tokens (the graph prepends
/// <see cref="Length"/> ones to it, so ALiBi, positions derived from the mask and the causal mask see the prefix as a past
/// that is always there):
/// </para>
/// <para>
/// model.onnx keeps the base model's cache contract (what ORT GenAI expects): past_key_values / present hold only the
/// real tokens. The attention reads the constants and the cache separately (<see cref="PrefixKv"/>): scores against
/// the prefix come before the scores against present, and the probabilities are split again for the two weighted sums,
/// so no per-step op copies the prefix or the cache; that costs ~5 small kernels per layer and step.
/// </para>
/// <para>
/// The prefix-in-cache graph (<see cref="CausalLmGraphOptions.PrefixInCache"/>, the one the Runtime runs) carries the
/// prefix in the KV cache, as PEFT hands it to transformers as past_key_values: the first step (past length 0) writes
/// present = [prefix, new], later steps present = [past, new], so present and past_key_values hold Length + the real
/// tokens and the attention is the base graph's. Its constants are one initializer <see cref="CacheName"/>
/// [1, 2 * layers * kv_heads, Length, head_dim] (<see cref="CacheHeads"/>). Encoder-decoder graphs have the first form only.
/// </para>
/// </summary>
public sealed class AttentionPrefix
{
    /// <param name="keys">Per layer [heads * length * headDim] (row-major [heads, length, head_dim]).</param>
    /// <param name="values">Per layer, same layout as <paramref name="keys"/>.</param>
    public AttentionPrefix(int length, int heads, int headDim, float[][] keys, float[][] values)
    {
        if (length <= 0 || heads <= 0 || headDim <= 0) throw new ArgumentException($"prefix of length {length}, {heads} heads, head_dim {headDim}");
        if (keys.Length != values.Length) throw new ArgumentException($"{keys.Length} key layers but {values.Length} value layers");
        long per = (long)heads * length * headDim;
        foreach (var t in keys.Concat(values))
            if (t.LongLength != per) throw new ArgumentException($"prefix tensor of {t.LongLength} values, expected [{heads}, {length}, {headDim}]");
        Length = length;
        Heads = heads;
        HeadDim = headDim;
        Keys = keys;
        Values = values;
    }

    /// <summary>Number of virtual tokens (positions 0 .. Length - 1; real tokens start at Length).</summary>
    public int Length { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public int NumLayers => Keys.Length;
    public float[][] Keys { get; }
    public float[][] Values { get; }

    /// <summary>
    /// Encoder-decoders only: the cross-attention keys/values PEFT hands to each decoder layer ([heads, length, head_dim]).
    /// transformers 4.33 uses them instead of the encoder's only when the encoder sequence is exactly
    /// <see cref="Length"/> long (otherwise they are ignored).
    /// </summary>
    public float[][]? CrossKeys { get; init; }
    public float[][]? CrossValues { get; init; }

    /// <summary>The transposed keys [1, heads, head_dim, length] of a self-attention layer.</summary>
    public static string KeyName(int layer) => $"prompt.past.{layer}.key_t";
    public static string ValueName(int layer) => $"prompt.past.{layer}.value";
    public static string CrossKeyName(int layer) => $"prompt.past.{layer}.cross_key";
    public static string CrossValueName(int layer) => $"prompt.past.{layer}.cross_value";

    /// <summary>Checks the prefix fits a graph's attention (kv heads, head_dim, layers).</summary>
    public void CheckFits(int numLayers, int kvHeads, int headDim)
    {
        if (NumLayers < numLayers || Heads != kvHeads || HeadDim != headDim)
            throw new PeftOnnxException($"prompt prefix of {NumLayers} layers x [{Heads} heads, {Length}, {HeadDim}] does not fit a model of {numLayers} layers with {kvHeads} key/value heads of {HeadDim} (head_dim {headDim})");
    }

    /// <summary>
    /// [batch, Length] ones (int64) followed by <paramref name="mask"/> [batch, n] along axis 1: one Pad with 1s, as
    /// it runs at every decode step.
    /// </summary>
    public string ExtendMask(GraphBuilder g, string mask)
    {
        using var _ = g.Scope("prompt_mask");
        return g.Op("Pad", [mask, g.Ints(0, Length, 0, 0), g.Constant(1L)]);
    }

    /// <summary>
    /// The constants of <paramref name="layer"/> as initializers for an attention of <paramref name="queryHeads"/>
    /// heads: keys transposed [1, queryHeads, head_dim, Length], values [1, queryHeads, Length, head_dim]. Query head
    /// h reads kv head h / (queryHeads / kv_heads), as repeat_kv pairs them. Their batch dimension is 1: MatMul
    /// broadcasts them over the batch, so the graph never expands them. Prefix keys are used as stored (no rotary embedding: transformers
    /// hands them to the attention as past keys, which are never rotated again).
    /// </summary>
    public PrefixKv Constants(GraphBuilder g, int layer, int queryHeads)
    {
        if (queryHeads % Heads != 0) throw new ArgumentException($"{queryHeads} query heads are not a multiple of the prefix's {Heads} key/value heads");
        int groups = queryHeads / Heads;
        var keys = g.Initializer(KeyName(layer), InitializerData.FromFloats(Repeated(Keys[layer], groups, transpose: true), 1, queryHeads, HeadDim, Length));
        var values = g.Initializer(ValueName(layer), InitializerData.FromFloats(Repeated(Values[layer], groups, transpose: false), 1, queryHeads, Length, HeadDim));
        return new PrefixKv(keys, values, Length);
    }

    /// <summary>
    /// Every decoder layer's keys and values stacked along the heads, [1, 2 * layers * heads, Length, head_dim] (layer i:
    /// key heads block 2i, value block 2i + 1; <see cref="CacheHeads"/>), or along the width, [1, Length, 2 * layers *
    /// heads * head_dim] (<see cref="CacheTokens"/>).
    /// </summary>
    public const string CacheName = "prompt.past.cache";

    /// <summary>
    /// The prefix as it enters the KV cache, per self-attention layer i: key at 2i, value at 2i + 1, each [batch,
    /// heads, n0, head_dim] with n0 = Length on the first step and 0 afterwards, when present already carries it. Six
    /// small ops per step for all layers (what a tiny model's decode step pays for the prefix): a Slice of the stacked
    /// constants from the past length on (0 on the first step: all of it; later at least Length + 1, past the end:
    /// none), an Expand to the batch (its shape from two more ops) and one Split straight into the layers' blocks.
    /// </summary>
    public IReadOnlyList<string> CacheHeads(GraphBuilder g, string tokens, string pastKey0, int numLayers)
    {
        using var _ = g.Scope("prompt_cache");
        long per = (long)Heads * Length * HeadDim;
        var stacked = new float[2 * numLayers * per];
        for (int i = 0; i < numLayers; i++)
        {
            Keys[i].CopyTo(stacked, 2 * i * per);
            Values[i].CopyTo(stacked, (2 * i + 1) * per);
        }
        var constants = g.Initializer(CacheName, InitializerData.FromFloats(stacked, 1, 2 * numLayers * Heads, Length, HeadDim));
        var sliced = g.Op("Slice", [constants, g.Shape(pastKey0, 2, 3), g.Ints(Length), g.Ints(2)]);
        var batchShape = g.Concat(0, [g.Shape(tokens, 0, 1), g.Ints(1, 1, 1)]);
        return g.Split(g.Op("Expand", [sliced, batchShape]), 1, 2 * numLayers);
    }

    /// <summary>
    /// As <see cref="CacheHeads"/>, in the layout of a step's own keys and values before they are split into heads:
    /// per self-attention layer i, key at 2i and value at 2i + 1, each [batch, n0, heads * head_dim], n0 = Length on
    /// the first step and 0 afterwards. A graph whose attention node appends to the cache itself puts these in front
    /// of the step's keys and values, so later steps copy nothing of the prefix (not even an empty one into the past).
    /// The stacked constant is [1, Length, 2 * layers * heads * head_dim].
    /// </summary>
    public IReadOnlyList<string> CacheTokens(GraphBuilder g, string tokens, string pastKey0, int numLayers)
    {
        using var _ = g.Scope("prompt_cache");
        int width = Heads * HeadDim, parts = 2 * numLayers;
        var stacked = new float[(long)Length * parts * width];
        for (int j = 0; j < parts; j++)
        {
            var source = j % 2 == 0 ? Keys[j / 2] : Values[j / 2];   // [heads, Length, head_dim]
            for (int h = 0; h < Heads; h++)
                for (int t = 0; t < Length; t++)
                    Array.Copy(source, ((long)h * Length + t) * HeadDim, stacked, ((long)t * parts + j) * width + (long)h * HeadDim, HeadDim);
        }
        var constants = g.Initializer(CacheName, InitializerData.FromFloats(stacked, 1, Length, parts * width));
        var sliced = g.Op("Slice", [constants, g.Shape(pastKey0, 2, 3), g.Ints(Length), g.Ints(1)]);
        var batchShape = g.Concat(0, [g.Shape(tokens, 0, 1), g.Ints(1, 1)]);
        return g.Split(g.Op("Expand", [sliced, batchShape]), 2, parts);
    }

    /// <summary>[heads, Length, head_dim] -> [heads * groups, Length, head_dim] or, transposed, [heads * groups, head_dim, Length].</summary>
    internal float[] Repeated(float[] data, int groups, bool transpose)
    {
        int per = Length * HeadDim;
        var result = new float[data.Length * groups];
        for (int h = 0; h < Heads * groups; h++)
        {
            var source = data.AsSpan((h / groups) * per, per);
            var target = result.AsSpan(h * per, per);
            if (!transpose)
            {
                source.CopyTo(target);
                continue;
            }
            for (int t = 0; t < Length; t++)
                for (int d = 0; d < HeadDim; d++)
                    target[d * Length + t] = source[t * HeadDim + d];
        }
        return result;
    }

    /// <summary>
    /// Encoder-decoders: the cross-attention keys (or values) decoder layer <paramref name="layer"/> uses, given the ones computed
    /// from the encoder output [batch, heads, enc, head_dim]: the prefix when enc == Length (transformers then takes
    /// the "past" as keys/values), else the computed ones. Evaluated once per request, in the encoder graph.
    /// </summary>
    public string SelectCross(GraphBuilder g, int layer, string computed, bool value)
    {
        if (CrossKeys == null || CrossValues == null) return computed;
        var name = value ? CrossValueName(layer) : CrossKeyName(layer);
        var data = value ? CrossValues[layer] : CrossKeys[layer];
        using var _ = g.Scope(value ? "value/prompt" : "key/prompt");
        var constant = g.Initializer(name, InitializerData.FromFloats(data, 1, Heads, Length, HeadDim));
        var enc = g.Shape(computed, 2, 3);                                                         // [1]
        var indices = g.Op("Min", [g.Range(g.Constant(0L), g.Squeeze(enc, [0]), g.Constant(1L)), g.Constant((long)Length - 1)]);
        var fitted = g.Gather(constant, indices, axis: 2);                                          // [1, heads, enc, d]
        var same = g.Op("Equal", [enc, g.Ints(Length)]);                                            // [1]
        return g.Where(same, fitted, computed);
    }
}
