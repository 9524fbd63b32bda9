namespace Peft.Onnx.Core.Onnx;

/// <summary>
/// File and tensor names of an encoder-decoder export (Optimum's names; the encoder computes the cross-attention
/// keys/values once, as ORT GenAI splits the work):
/// <code>
/// encoder_model.onnx
///   in   input_ids, attention_mask                      int64 [batch, encoder_sequence]
///   out  last_hidden_state                              [batch, encoder_sequence, d_model]
///        present.{i}.encoder.key|value                  [batch, heads, encoder_sequence, head_dim]
/// decoder_model.onnx (the first step and later steps)
///   in   input_ids                                      int64 [batch, decoder_sequence]
///        encoder_attention_mask                         int64 [batch, encoder_sequence]
///        past_key_values.{i}.decoder.key|value          self-attention cache (past length 0 on the first step)
///        past_key_values.{i}.encoder.key|value          the encoder's present.{i}.encoder.key|value, every step
///   out  logits                                         [batch, decoder_sequence, vocab]
///        present.{i}.decoder.key|value                  [batch, heads, past + decoder_sequence, head_dim]
/// both graphs of a multi-adapter export
///   in   adapter_index                                  int64 [batch] (the same per row in both; -1 = the base)
/// </code>
/// </summary>
public static class Seq2SeqContract
{
    public const string EncoderFile = "encoder_model.onnx";
    public const string DecoderFile = "decoder_model.onnx";

    /// <summary>External data of <see cref="EncoderFile"/>.</summary>
    public const string EncoderDataFile = EncoderFile + ".data";

    /// <summary>External data of <see cref="DecoderFile"/>.</summary>
    public const string DecoderDataFile = DecoderFile + ".data";

    /// <summary>The encoder's and the decoder's token input.</summary>
    public const string InputIds = CausalLmContract.InputIds;

    /// <summary>The encoder's mask input; the decoder takes the same mask as <see cref="EncoderAttentionMask"/>.</summary>
    public const string AttentionMask = CausalLmContract.AttentionMask;

    public const string LastHiddenState = "last_hidden_state";
    public const string EncoderAttentionMask = "encoder_attention_mask";
    public const string Logits = CausalLmContract.Logits;

    /// <summary>Each row's adapter in both graphs of a multi-adapter export, as <see cref="CausalLmContract.AdapterIndex"/>.</summary>
    public const string AdapterIndex = CausalLmContract.AdapterIndex;

    public const string PastSelfKeyPattern = "past_key_values.%d.decoder.key";
    public const string PastSelfValuePattern = "past_key_values.%d.decoder.value";
    public const string PastCrossKeyPattern = "past_key_values.%d.encoder.key";
    public const string PastCrossValuePattern = "past_key_values.%d.encoder.value";
    public const string PresentSelfKeyPattern = "present.%d.decoder.key";
    public const string PresentSelfValuePattern = "present.%d.decoder.value";
    public const string PresentCrossKeyPattern = "present.%d.encoder.key";
    public const string PresentCrossValuePattern = "present.%d.encoder.value";

    public static string PastSelfKey(int layer) => LayerPattern.Format(PastSelfKeyPattern, layer);
    public static string PastSelfValue(int layer) => LayerPattern.Format(PastSelfValuePattern, layer);
    public static string PastCrossKey(int layer) => LayerPattern.Format(PastCrossKeyPattern, layer);
    public static string PastCrossValue(int layer) => LayerPattern.Format(PastCrossValuePattern, layer);
    public static string PresentSelfKey(int layer) => LayerPattern.Format(PresentSelfKeyPattern, layer);
    public static string PresentSelfValue(int layer) => LayerPattern.Format(PresentSelfValuePattern, layer);
    public static string PresentCrossKey(int layer) => LayerPattern.Format(PresentCrossKeyPattern, layer);
    public static string PresentCrossValue(int layer) => LayerPattern.Format(PresentCrossValuePattern, layer);
}
