using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Declares the inputs and outputs of every decoder-only graph (<see cref="CausalLmContract"/> names them):
/// input_ids [batch, seq] and attention_mask [batch, past + seq] (int64), position_ids [batch, seq] (int64, only
/// for families whose forward takes them, ModelFamily.TakesPositionIds), past_key_values.{i}.key|value
/// [batch, kv_heads, past_seq, head_dim] -> logits [batch, seq, vocab] and present.{i}.key|value
/// [batch, kv_heads, past + seq, head_dim]. One graph serves prefill (past_seq = 0) and decoding.
/// <para>
/// position_ids contract: the caller passes what transformers' prepare_inputs_for_generation passes, i.e.
/// <c>cumsum(attention_mask) - 1</c> with padded positions set to 1, the last seq columns (see
/// <see cref="CausalLmContract.PositionIdsFromMask"/>). Without padding that is past .. past + seq - 1. Families without the input
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
    /// <summary>Declares the inputs and outputs (in Optimum's order); nodes must later produce the outputs.</summary>
    public static void Declare(GraphBuilder g, int numLayers, int numKvHeads, int headDim, int vocabSize) =>
        Declare(g, numLayers, numKvHeads, headDim, vocabSize, positionIds: false);

    /// <summary>
    /// Declares the inputs and outputs; with <paramref name="positionIds"/> the graph also takes position_ids
    /// [batch, seq] right after attention_mask (ORT GenAI's order).
    /// </summary>
    public static void Declare(GraphBuilder g, int numLayers, int numKvHeads, int headDim, int vocabSize, bool positionIds)
    {
        g.Input(CausalLmContract.InputIds, ElementType.Int64, Dims.Batch, Dims.Sequence);
        g.Input(CausalLmContract.AttentionMask, ElementType.Int64, Dims.Batch, Dims.TotalSequence);
        if (positionIds) g.Input(CausalLmContract.PositionIds, ElementType.Int64, Dims.Batch, Dims.Sequence);
        DeclarePastAndOutputs(g, numLayers, numKvHeads, headDim, vocabSize);
    }

    /// <summary>past_key_values.{i}.key|value, num_logits_to_keep (default 0), logits and present.{i}.key|value.</summary>
    internal static void DeclarePastAndOutputs(GraphBuilder g, int numLayers, int numKvHeads, int headDim, int vocabSize)
    {
        for (int i = 0; i < numLayers; i++)
        {
            g.Input(CausalLmContract.PastKey(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.PastSequence, headDim);
            g.Input(CausalLmContract.PastValue(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.PastSequence, headDim);
        }
        g.Input(CausalLmContract.NumLogitsToKeep, ElementType.Int64);
        g.Initializer(CausalLmContract.NumLogitsToKeep, InitializerData.Scalar(0L));
        g.Output(CausalLmContract.Logits, ElementType.Float, Dims.Batch, Dims.LogitsSequence, vocabSize);
        for (int i = 0; i < numLayers; i++)
        {
            g.Output(CausalLmContract.PresentKey(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.TotalSequence, headDim);
            g.Output(CausalLmContract.PresentValue(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.TotalSequence, headDim);
        }
    }

    /// <summary>
    /// hidden [batch, seq, h] -> [batch, k, h], the last k = num_logits_to_keep positions (all of them for 0, or when k
    /// exceeds seq): hidden[:, -k:] as transformers slices it, so the output head runs only where logits are wanted.
    /// </summary>
    public static string LastPositions(GraphBuilder g, string hidden)
    {
        using var _ = g.Scope("/" + CausalLmContract.NumLogitsToKeep);
        var start = g.Op("Neg", [g.Unsqueeze(CausalLmContract.NumLogitsToKeep, [0])]);
        return g.Op("Slice", [hidden, start, g.Ints(long.MaxValue), g.Ints(1)]);
    }
}
