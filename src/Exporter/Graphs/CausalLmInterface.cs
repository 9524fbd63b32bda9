using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Inputs and outputs of every decoder-only graph, named as Optimum and ORT GenAI ("decoder" type) expect:
/// input_ids [batch, seq] and attention_mask [batch, past + seq] (int64), position_ids [batch, seq] (int64, only
/// for families whose forward takes them, ModelFamily.TakesPositionIds), past_key_values.{i}.key|value
/// [batch, kv_heads, past_seq, head_dim] -> logits [batch, seq, vocab] and present.{i}.key|value
/// [batch, kv_heads, past + seq, head_dim]. One graph serves prefill (past_seq = 0) and decoding.
/// <para>
/// position_ids contract: the caller passes what transformers' prepare_inputs_for_generation passes, i.e.
/// <c>cumsum(attention_mask) - 1</c> with padded positions set to 1, the last seq columns (see
/// <see cref="PositionIdsFromMask"/>). Without padding that is past .. past + seq - 1. Families without the input
/// derive positions from attention_mask inside the graph (a learned table as its transformers module does,
/// e.g. cumsum(mask) * mask - 1 plus the table's offset, as Optimum does for transformers &lt; 4.46).
/// </para>
/// <para>
/// num_logits_to_keep (int64 scalar, optional: an overridable initializer, default 0) limits logits to the last k
/// positions, as transformers' num_logits_to_keep: 0 keeps every position (forward, compare, ORT GenAI, which do not
/// feed it), a generator feeds 1 so the prompt's prefill skips the output head for all but the last token (the head
/// is a quarter to half of a small model's prefill work). logits are then [batch, k, vocab].
/// </para>
/// <para>
/// kv_heads is num_key_value_heads (grouped-query attention keeps the cache un-repeated); the graph repeats
/// the kv heads for the attention product itself.
/// </para>
/// <para>
/// Exports with a baked prompt-learning adapter (prompt tuning, p-tuning, prefix tuning; <see cref="AttentionPrefix"/>)
/// keep this interface: past/present and attention_mask cover only the real tokens, logits are [batch, seq, vocab] for
/// the real tokens; the graph holds the virtual tokens' keys/values as initializers prompt.past.{i}.key_t|value
/// (attended apart from the cache, never copied into it) and prepends nv ones to the mask. Graphs that take
/// position_ids then take none: as in PEFT 0.7.1 (which drops position_ids, so transformers uses
/// arange(past, past + seq)), real tokens sit at nv + past + t regardless of padding.
/// </para>
/// </summary>
public static class CausalLmInterface
{
    /// <summary>
    /// The prefix-in-cache graph an export with a baked prompt writes beside model.onnx (<see cref="AttentionPrefix"/>):
    /// same inputs and outputs, its present also holding the virtual tokens; it reads its weights from model.onnx.data.
    /// </summary>
    public const string PrefixInCacheFile = "model_prefix_in_cache.onnx";

    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string PositionIds = "position_ids";
    public const string Logits = "logits";
    public const string NumLogitsToKeep = "num_logits_to_keep";

    public static string PastKey(int layer) => $"past_key_values.{layer}.key";
    public static string PastValue(int layer) => $"past_key_values.{layer}.value";
    public static string PresentKey(int layer) => $"present.{layer}.key";
    public static string PresentValue(int layer) => $"present.{layer}.value";

    /// <summary>Declares the inputs and outputs (in Optimum's order); nodes must later produce the outputs.</summary>
    public static void Declare(GraphBuilder g, int numLayers, int numKvHeads, int headDim, int vocabSize) =>
        Declare(g, numLayers, numKvHeads, headDim, vocabSize, positionIds: false);

    /// <summary>
    /// Declares the inputs and outputs; with <paramref name="positionIds"/> the graph also takes position_ids
    /// [batch, seq] right after attention_mask (ORT GenAI's order).
    /// </summary>
    public static void Declare(GraphBuilder g, int numLayers, int numKvHeads, int headDim, int vocabSize, bool positionIds)
    {
        g.Input(InputIds, ElementType.Int64, Dims.Batch, Dims.Sequence);
        g.Input(AttentionMask, ElementType.Int64, Dims.Batch, Dims.TotalSequence);
        if (positionIds) g.Input(PositionIds, ElementType.Int64, Dims.Batch, Dims.Sequence);
        DeclarePastAndOutputs(g, numLayers, numKvHeads, headDim, vocabSize);
    }

    /// <summary>past_key_values.{i}.key|value, num_logits_to_keep (default 0), logits and present.{i}.key|value.</summary>
    internal static void DeclarePastAndOutputs(GraphBuilder g, int numLayers, int numKvHeads, int headDim, int vocabSize)
    {
        for (int i = 0; i < numLayers; i++)
        {
            g.Input(PastKey(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.PastSequence, headDim);
            g.Input(PastValue(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.PastSequence, headDim);
        }
        g.Input(NumLogitsToKeep, ElementType.Int64);
        g.Initializer(NumLogitsToKeep, InitializerData.Scalar(0L));
        g.Output(Logits, ElementType.Float, Dims.Batch, Dims.LogitsSequence, vocabSize);
        for (int i = 0; i < numLayers; i++)
        {
            g.Output(PresentKey(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.TotalSequence, headDim);
            g.Output(PresentValue(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.TotalSequence, headDim);
        }
    }

    /// <summary>
    /// hidden [batch, seq, h] -> [batch, k, h], the last k = num_logits_to_keep positions (all of them for 0, or when k
    /// exceeds seq): hidden[:, -k:] as transformers slices it, so the output head runs only where logits are wanted.
    /// </summary>
    public static string LastPositions(GraphBuilder g, string hidden)
    {
        using var _ = g.Scope("/num_logits_to_keep");
        var start = g.Op("Neg", [g.Unsqueeze(NumLogitsToKeep, [0])]);
        return g.Op("Slice", [hidden, start, g.Ints(long.MaxValue), g.Ints(1)]);
    }

    /// <summary>
    /// The position_ids a caller feeds for <paramref name="attentionMask"/> [batch, total] and a step of
    /// <paramref name="seq"/> new tokens: per row cumsum(mask) - 1, positions where mask is 0 set to 1, the last
    /// <paramref name="seq"/> columns ([batch, seq] flattened), as transformers 4.33's prepare_inputs_for_generation.
    /// </summary>
    public static long[] PositionIdsFromMask(ReadOnlySpan<long> attentionMask, int batch, int seq)
    {
        if (batch <= 0 || attentionMask.Length % batch != 0) throw new ArgumentException($"attention_mask of {attentionMask.Length} values is not [{batch}, total]");
        int total = attentionMask.Length / batch;
        if (seq > total) throw new ArgumentException($"{seq} new tokens but attention_mask covers only {total} positions");
        var result = new long[batch * seq];
        for (int b = 0; b < batch; b++)
        {
            long sum = 0;
            for (int t = 0; t < total; t++)
            {
                var m = attentionMask[b * total + t];
                sum += m;
                if (t >= total - seq) result[b * seq + t - (total - seq)] = m == 0 ? 1 : sum - 1;
            }
        }
        return result;
    }
}
