using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>
/// Inputs of a causal LM forward, as transformers' forward(input_ids, attention_mask, position_ids,
/// past_key_values, inputs_embeds, labels). Exactly one of InputIds / InputsEmbeds is set.
/// AttentionMask covers past + current positions ([B, past+T]); null means all ones.
/// </summary>
public sealed record CausalLmInput(
    Tensor? InputIds,
    Tensor? AttentionMask = null,
    Tensor? InputsEmbeds = null,
    KvCache? PastKeyValues = null,
    Tensor? Labels = null,
    Tensor? PositionIds = null,
    bool UseCache = false);

/// <summary>
/// Inputs of an encoder-decoder forward, as T5ForConditionalGeneration.forward. When DecoderInputIds is null
/// and Labels are given, the decoder input is the labels shifted right (start token, -100 -> pad).
/// EncoderHiddenStates skips the encoder (generation reuses it). DecoderInputsEmbeds replaces the decoder's
/// token embeddings (PEFT's seq2seq prompt tuning sends virtual tokens to the decoder too).
/// </summary>
public sealed record Seq2SeqLmInput(
    Tensor? InputIds,
    Tensor? AttentionMask = null,
    Tensor? InputsEmbeds = null,
    Tensor? DecoderInputIds = null,
    Tensor? DecoderAttentionMask = null,
    Tensor? Labels = null,
    Tensor? EncoderHiddenStates = null,
    KvCache? PastKeyValues = null,
    bool UseCache = false,
    Tensor? DecoderInputsEmbeds = null);

/// <summary>Logits [B, T, V], the mean cross-entropy when labels were given, and the new cache when asked.</summary>
public sealed record LmOutput(Tensor Logits, Tensor? Loss, KvCache? PresentKeyValues, Tensor? EncoderHiddenStates = null);
