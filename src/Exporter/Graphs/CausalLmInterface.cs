using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// Inputs and outputs of every decoder-only graph, named as Optimum and ORT GenAI ("decoder" type) expect:
/// input_ids [batch, seq] and attention_mask [batch, past + seq] (int64), past_key_values.{i}.key|value
/// [batch, kv_heads, past_seq, head_dim] -> logits [batch, seq, vocab] and present.{i}.key|value
/// [batch, kv_heads, past + seq, head_dim]. One graph serves prefill (past_seq = 0) and decoding.
/// </summary>
public static class CausalLmInterface
{
    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string Logits = "logits";

    public static string PastKey(int layer) => $"past_key_values.{layer}.key";
    public static string PastValue(int layer) => $"past_key_values.{layer}.value";
    public static string PresentKey(int layer) => $"present.{layer}.key";
    public static string PresentValue(int layer) => $"present.{layer}.value";

    /// <summary>Declares the inputs and outputs (in Optimum's order); nodes must later produce the outputs.</summary>
    public static void Declare(GraphBuilder g, int numLayers, int numKvHeads, int headDim, int vocabSize)
    {
        g.Input(InputIds, ElementType.Int64, Dims.Batch, Dims.Sequence);
        g.Input(AttentionMask, ElementType.Int64, Dims.Batch, Dims.TotalSequence);
        for (int i = 0; i < numLayers; i++)
        {
            g.Input(PastKey(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.PastSequence, headDim);
            g.Input(PastValue(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.PastSequence, headDim);
        }
        g.Output(Logits, ElementType.Float, Dims.Batch, Dims.Sequence, vocabSize);
        for (int i = 0; i < numLayers; i++)
        {
            g.Output(PresentKey(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.TotalSequence, headDim);
            g.Output(PresentValue(i), ElementType.Float, Dims.Batch, numKvHeads, Dims.TotalSequence, headDim);
        }
    }
}
