using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>The two graphs of an encoder-decoder export, written as encoder_model.onnx and decoder_model.onnx.</summary>
public sealed record Seq2SeqGraphs(GraphBuilder Encoder, GraphBuilder Decoder);

/// <summary>
/// Declares the graphs of every encoder-decoder export (<see cref="Seq2SeqContract"/> names their files and tensors; Optimum's tensor names, ORT GenAI's split of the work:
/// cross-attention keys/values are computed once, by the encoder, as whisper's encoder does in GenAI).
/// <code>
/// encoder_model.onnx
///   in   input_ids                        int64 [batch_size, encoder_sequence_length]
///        attention_mask                   int64 [batch_size, encoder_sequence_length]   1 = token, 0 = padding
///   out  last_hidden_state                float [batch_size, encoder_sequence_length, d_model]
///        present.{i}.encoder.key|value    float [batch_size, heads, encoder_sequence_length, head_dim]
///                                         i &lt; decoder layers: EncDecAttention.k|v of decoder block i applied
///                                         to last_hidden_state, in heads layout
/// decoder_model.onnx (one graph for the first step and for later steps)
///   in   input_ids                        int64 [batch_size, decoder_sequence_length]
///        encoder_attention_mask           int64 [batch_size, encoder_sequence_length]   the encoder's attention_mask
///        past_key_values.{i}.decoder.key|value  float [batch_size, heads, past_decoder_sequence_length, head_dim]
///                                         self-attention cache; past length 0 on the first step
///        past_key_values.{i}.encoder.key|value  float [batch_size, heads, encoder_sequence_length, head_dim]
///                                         the encoder's present.{i}.encoder.key|value, fed unchanged every step
///   out  logits                           float [batch_size, decoder_sequence_length, vocab]
///        present.{i}.decoder.key|value    float [batch_size, heads, past + decoder_sequence_length, head_dim]
/// </code>
/// The decoder needs no encoder_hidden_states input: its only use is the cross keys/values, which come in as
/// past_key_values.{i}.encoder.*. Decoder positions (relative position buckets, causal mask) start at the past
/// length, so feeding present back as past continues the sequence. For ORT GenAI, map these names in
/// genai_config.json (decoder inputs: past_key_names "past_key_values.%d.decoder.key", cross_past_key_names
/// "past_key_values.%d.encoder.key", encoder_attention_mask "encoder_attention_mask"; encoder outputs:
/// cross_present_key_names "present.%d.encoder.key").
/// </summary>
public static class Seq2SeqInterface
{
    public const string Batch = "batch_size";
    public const string EncoderSequence = "encoder_sequence_length";
    public const string DecoderSequence = "decoder_sequence_length";
    public const string PastDecoderSequence = "past_decoder_sequence_length";
    public const string TotalDecoderSequence = "total_decoder_sequence_length";

    /// <summary>Length of the encoder output when a soft prompt is prepended to the encoder input (prompt + encoder_sequence_length).</summary>
    public const string PromptedEncoderSequence = "prompted_encoder_sequence_length";

    /// <summary>Declares the encoder graph's inputs and outputs; nodes must later produce the outputs.</summary>
    public static void DeclareEncoder(GraphBuilder g, int decoderLayers, int heads, int headDim, int dModel) =>
        DeclareEncoder(g, decoderLayers, heads, headDim, dModel, EncoderSequence);

    /// <summary>
    /// Declares the encoder graph with outputs of length <paramref name="outputSequence"/> (a soft prompt makes the
    /// encoder output longer than its input: <see cref="PromptedEncoderSequence"/>).
    /// </summary>
    public static void DeclareEncoder(GraphBuilder g, int decoderLayers, int heads, int headDim, int dModel, string outputSequence)
    {
        g.Input(Seq2SeqContract.InputIds, ElementType.Int64, Batch, EncoderSequence);
        g.Input(Seq2SeqContract.AttentionMask, ElementType.Int64, Batch, EncoderSequence);
        g.Output(Seq2SeqContract.LastHiddenState, ElementType.Float, Batch, outputSequence, dModel);
        for (int i = 0; i < decoderLayers; i++)
        {
            g.Output(Seq2SeqContract.PresentCrossKey(i), ElementType.Float, Batch, heads, outputSequence, headDim);
            g.Output(Seq2SeqContract.PresentCrossValue(i), ElementType.Float, Batch, heads, outputSequence, headDim);
        }
    }

    /// <summary>Declares the decoder graph's inputs and outputs (per layer in Optimum's order: decoder key, value, encoder key, value).</summary>
    public static void DeclareDecoder(GraphBuilder g, int decoderLayers, int heads, int headDim, int vocabSize) =>
        DeclareDecoder(g, decoderLayers, heads, headDim, vocabSize, EncoderSequence);

    /// <summary>Declares the decoder graph with cross keys/values of length <paramref name="crossSequence"/> (see <see cref="DeclareEncoder(GraphBuilder,int,int,int,int,string)"/>).</summary>
    public static void DeclareDecoder(GraphBuilder g, int decoderLayers, int heads, int headDim, int vocabSize, string crossSequence)
    {
        g.Input(Seq2SeqContract.InputIds, ElementType.Int64, Batch, DecoderSequence);
        g.Input(Seq2SeqContract.EncoderAttentionMask, ElementType.Int64, Batch, EncoderSequence);
        for (int i = 0; i < decoderLayers; i++)
        {
            g.Input(Seq2SeqContract.PastSelfKey(i), ElementType.Float, Batch, heads, PastDecoderSequence, headDim);
            g.Input(Seq2SeqContract.PastSelfValue(i), ElementType.Float, Batch, heads, PastDecoderSequence, headDim);
            g.Input(Seq2SeqContract.PastCrossKey(i), ElementType.Float, Batch, heads, crossSequence, headDim);
            g.Input(Seq2SeqContract.PastCrossValue(i), ElementType.Float, Batch, heads, crossSequence, headDim);
        }
        g.Output(Seq2SeqContract.Logits, ElementType.Float, Batch, DecoderSequence, vocabSize);
        for (int i = 0; i < decoderLayers; i++)
        {
            g.Output(Seq2SeqContract.PresentSelfKey(i), ElementType.Float, Batch, heads, TotalDecoderSequence, headDim);
            g.Output(Seq2SeqContract.PresentSelfValue(i), ElementType.Float, Batch, heads, TotalDecoderSequence, headDim);
        }
    }
}

/// <summary>
/// Options of the encoder-decoder family graphs (T5Graph). The defaults build the base graphs of
/// <see cref="Seq2SeqInterface"/>.
/// </summary>
public sealed record Seq2SeqGraphOptions
{
    /// <summary>
    /// Soft prompt [EncoderPromptLength, d_model] (row-major) prepended to the encoder's input embeddings, its
    /// positions unmasked (PEFT prompt tuning / p-tuning on encoder-decoder models). The encoder outputs and the
    /// decoder's cross keys/values are then EncoderPromptLength + encoder_sequence_length long
    /// (<see cref="Seq2SeqInterface.PromptedEncoderSequence"/>); callers still pass the encoder's own
    /// attention_mask as encoder_attention_mask, and the decoder prepends the prompt's ones.
    /// </summary>
    public float[]? EncoderPrompt { get; init; }

    public int EncoderPromptLength { get; init; }

    /// <summary>
    /// Constant self-attention keys/values of every decoder layer (PEFT prefix tuning), with its cross-attention
    /// part (<see cref="AttentionPrefix.CrossKeys"/>) applied by the encoder graph where transformers uses it.
    /// The decoder's past/present cover only real decoder tokens.
    /// </summary>
    public AttentionPrefix? DecoderPrefix { get; init; }

    /// <summary>LoRA kept unmerged: side branches beside the targeted modules (see <see cref="LoraBranches"/>).</summary>
    public LoraBranches? Lora { get; init; }

    /// <summary>Several adapters' encoder soft prompts chosen per row by adapter_index, instead of one <see cref="EncoderPrompt"/>.</summary>
    public EncoderPromptStack? EncoderPrompts { get; init; }

    /// <summary>Several adapters' decoder prefixes (and cross parts) chosen per row by adapter_index, instead of one <see cref="DecoderPrefix"/>.</summary>
    public PrefixStack? DecoderPrefixes { get; init; }

    public static readonly Seq2SeqGraphOptions Default = new();

    /// <summary>
    /// adapter_index [batch] in the encoder and the decoder graph where <see cref="Lora"/>, <see cref="EncoderPrompts"/>
    /// or <see cref="DecoderPrefixes"/> stack several adapters: an
    /// overridable initializer of one -1 (every row on the base), as the decoder-only graphs declare it.
    /// </summary>
    internal void DeclareAdapterIndex(GraphBuilder g)
    {
        if (Lora?.Stack == null && EncoderPrompts == null && DecoderPrefixes == null) return;
        g.Input(Seq2SeqContract.AdapterIndex, ElementType.Int64, Seq2SeqInterface.Batch);
        g.Initializer(Seq2SeqContract.AdapterIndex, InitializerData.FromInt64([-1L], 1));
    }

    internal bool HasEncoderPrompt => EncoderPrompt != null && EncoderPromptLength > 0;

    /// <summary>Whether the encoder's outputs are longer than its input (one prompt, or per-row prompts).</summary>
    internal bool PrependsEncoderPrompt => HasEncoderPrompt || EncoderPrompts != null;

    internal string CrossSequence => PrependsEncoderPrompt ? Seq2SeqInterface.PromptedEncoderSequence : Seq2SeqInterface.EncoderSequence;

    /// <summary>[batch, EncoderPromptLength] ones (int64) before <paramref name="mask"/> (per-row prompts: each row's prompt mask), or the mask unchanged.</summary>
    internal string PromptedMask(GraphBuilder g, string mask)
    {
        if (EncoderPrompts != null) return EncoderPrompts.ExtendMask(g, mask);
        if (!HasEncoderPrompt) return mask;
        using var _ = g.Scope("prompt_mask");
        var ones = g.Constant(InitializerData.FromInt64(Enumerable.Repeat(1L, EncoderPromptLength).ToArray(), 1, EncoderPromptLength));
        var shape = g.Concat(0, [g.Shape(mask, 0, 1), g.Ints(EncoderPromptLength)]);
        return g.Concat(1, [g.Op("Expand", [ones, shape]), mask]);
    }
}
