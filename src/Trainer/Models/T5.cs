using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Trainer.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Models;

/// <summary>
/// T5ForConditionalGeneration and MT5ForConditionalGeneration as transformers 4.33 computes them
/// (modeling_t5.py): pre-norm blocks with RMS layer norms, unscaled dot-product attention with a learned
/// relative position bias (block 0 of each stack owns it, every block of that stack reuses it), a decoder with
/// cross-attention, and a head that rescales by d_model^-0.5 when it is tied to the shared embedding.
/// Every linear goes through <see cref="PretrainedModel.Linears"/> so PEFT tuners can wrap it.
/// </summary>
public sealed class T5ForConditionalGeneration(T5Architecture architecture, ParameterStore parameters) : Seq2SeqLm(architecture, parameters)
{
    private readonly T5Config _config = architecture.T5;

    public override long DecoderStartTokenId => _config.DecoderStartId;

    // ---------------------------------------------------------------- model: encoder, decoder, head

    public override Tensor Encode(Tensor? inputIds, Tensor? attentionMask, Tensor? inputsEmbeds = null)
    {
        if ((inputIds is null) == (inputsEmbeds is null))
            throw new PeftOnnxException("T5 encoder: give exactly one of input_ids and inputs_embeds");
        // PEFT prompt tuning passes inputs_embeds with the virtual tokens already prepended (and a mask covering them).
        var embeds = inputsEmbeds ?? EmbedTokens(inputIds!);
        long batch = embeds.shape[0], length = embeds.shape[1];
        var mask = attentionMask ?? ones(batch, length, dtype: int64, device: embeds.device);
        if (mask.shape[0] != batch || mask.shape[1] != length)
            throw new PeftOnnxException($"T5 encoder: attention_mask has shape [{string.Join(", ", mask.shape)}] but the input is [{batch}, {length}]");

        // The encoder sees every unmasked position in both directions: the additive mask is [B, 1, 1, S].
        var extendedMask = InvertMask(mask)[.., TensorIndex.None, TensorIndex.None, ..];
        return Stack("encoder", _config.NumLayers, embeds, extendedMask, past: null, encoderHiddenStates: null,
            encoderMask: null, present: null);
    }

    public override LmOutput Forward(Seq2SeqLmInput input) => Forward(input, input.DecoderInputsEmbeds);

    /// <summary>
    /// forward with decoder_inputs_embeds: PEFT's seq2seq prompt tuning / p-tuning (num_transformer_submodules 2)
    /// prepends virtual tokens to the decoder input as well, and passes labels padded with -100 to match.
    /// </summary>
    private LmOutput Forward(Seq2SeqLmInput input, Tensor? decoderInputsEmbeds)
    {
        if (input.DecoderInputIds is not null && decoderInputsEmbeds is not null)
            throw new PeftOnnxException("T5: give decoder_input_ids or decoder_inputs_embeds, not both");
        var encoderHiddenStates = input.EncoderHiddenStates ?? Encode(input.InputIds, input.AttentionMask, input.InputsEmbeds);
        long batch = encoderHiddenStates.shape[0], sourceLength = encoderHiddenStates.shape[1];

        // As T5ForConditionalGeneration.forward: without decoder inputs, teacher-force on the labels shifted right.
        var decoderEmbeds = decoderInputsEmbeds ?? EmbedTokens(input.DecoderInputIds
            ?? (input.Labels is { } labels ? ShiftRight(labels)
                : throw new PeftOnnxException("T5: give decoder_input_ids, decoder_inputs_embeds or labels")));
        long targetLength = decoderEmbeds.shape[1];

        var past = input.PastKeyValues is { Self.Count: > 0 } p ? p : null;
        long pastLength = past?.Length ?? 0;
        if (past != null && past.Self.Count != _config.DecoderLayers)
            throw new PeftOnnxException($"T5: past_key_values has {past.Self.Count} layers but the decoder has {_config.DecoderLayers}");

        // The decoder self-attention mask covers past + current positions (all ones by default, as T5Stack does).
        var decoderMask = input.DecoderAttentionMask ?? ones(batch, pastLength + targetLength, dtype: int64, device: decoderEmbeds.device);
        if (decoderMask.shape[1] != pastLength + targetLength)
            throw new PeftOnnxException($"T5: decoder_attention_mask has {decoderMask.shape[1]} columns but past + decoder input is {pastLength + targetLength}");
        var encoderMask = input.AttentionMask ?? ones(batch, sourceLength, dtype: int64, device: encoderHiddenStates.device);

        var present = input.UseCache ? new KvCache() : null;
        var sequenceOutput = Stack("decoder", _config.DecoderLayers, decoderEmbeds, CausalMask(decoderMask, targetLength), past,
            encoderHiddenStates, InvertMask(encoderMask)[.., TensorIndex.None, TensorIndex.None, ..], present);

        // Mesh TensorFlow rescales before the tied projection (t5); mT5's separate head is not rescaled.
        if (Architecture.HeadIsTied) sequenceOutput = sequenceOutput.Times(Math.Pow(_config.DModel, -0.5));
        var logits = Linears.Forward("lm_head", sequenceOutput);

        var loss = input.Labels is { } l ? LmLoss.Aligned(logits, l) : null;
        return new LmOutput(logits, loss, present, encoderHiddenStates);
    }

    /// <summary>_shift_right: prepend decoder_start_token_id, drop the last label, and turn -100 into the pad token.</summary>
    public Tensor ShiftRight(Tensor labels)
    {
        using var startId = DecoderStartTokenId.ToScalar();
        var start = full(labels.shape[0], 1, startId, dtype: labels.dtype, device: labels.device);
        var shifted = cat([start, labels[.., ..^1]], 1);
        return shifted.MaskedFill(shifted.Equal(LmLoss.IgnoreIndex), _config.PadTokenId ?? 0);
    }

    // ---------------------------------------------------------------- T5Stack

    /// <summary>
    /// One stack (encoder or decoder): dropout, the blocks, final RMS norm, dropout. The relative position bias
    /// is computed once from block 0's table and shared by every block, with the additive mask folded in.
    /// </summary>
    private Tensor Stack(string prefix, int layers, Tensor embeds, Tensor extendedMask, KvCache? past,
        Tensor? encoderHiddenStates, Tensor? encoderMask, KvCache? present)
    {
        bool isDecoder = encoderHiddenStates is not null;
        long length = embeds.shape[1];
        long pastLength = past?.Length ?? 0;

        // compute_bias(real_seq_length, key_length), sliced to the current query rows when there is a past.
        var table = Parameters[$"{prefix}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"];
        var positionBias = ComputeBias(table, pastLength + length, pastLength + length, bidirectional: !isDecoder);
        if (pastLength > 0) positionBias = positionBias[.., .., (int)pastLength.., ..];
        positionBias = positionBias.Plus(extendedMask);

        // Cross-attention has no position bias (transformers adds zeros), only the encoder mask.
        var crossBias = encoderMask;

        var hidden = Dropout(embeds, _config.DropoutRate);
        for (int i = 0; i < layers; i++)
        {
            using var scope = NewDisposeScope();
            var selfPast = past?.Self[i];
            var crossPast = past != null && past.Cross.Count > i ? past.Cross[i] : ((Tensor, Tensor)?)null;
            var (h, selfPresent, crossPresent) = Block($"{prefix}.block.{i}", hidden, positionBias, selfPast,
                encoderHiddenStates, crossBias, crossPast);
            hidden = h.MoveToOuterDisposeScope();
            if (present != null)
            {
                present.Self.Add((selfPresent.Key.MoveToOuterDisposeScope(), selfPresent.Value.MoveToOuterDisposeScope()));
                if (crossPresent is { } c) present.Cross.Add((c.Key.MoveToOuterDisposeScope(), c.Value.MoveToOuterDisposeScope()));
            }
        }
        hidden = LayerNorm($"{prefix}.final_layer_norm.weight", hidden);
        return Dropout(hidden, _config.DropoutRate);
    }

    // ---------------------------------------------------------------- T5Block

    /// <summary>Self-attention, cross-attention (decoder only), feed-forward; each pre-norm with a residual.</summary>
    private (Tensor Hidden, (Tensor Key, Tensor Value) SelfPresent, (Tensor Key, Tensor Value)? CrossPresent) Block(
        string path, Tensor hidden, Tensor positionBias, (Tensor Key, Tensor Value)? selfPast,
        Tensor? encoderHiddenStates, Tensor? crossBias, (Tensor Key, Tensor Value)? crossPast)
    {
        // T5LayerSelfAttention
        var normed = LayerNorm($"{path}.layer.0.layer_norm.weight", hidden);
        var (attention, selfPresent) = Attention($"{path}.layer.0.SelfAttention", normed, keyValueStates: null, positionBias, selfPast);
        hidden = hidden.Plus(Dropout(attention, _config.DropoutRate));

        (Tensor, Tensor)? crossPresent = null;
        if (encoderHiddenStates is not null)
        {
            // T5LayerCrossAttention: queries from the decoder, keys/values from the encoder output.
            normed = LayerNorm($"{path}.layer.1.layer_norm.weight", hidden);
            (attention, var cross) = Attention($"{path}.layer.1.EncDecAttention", normed, encoderHiddenStates, crossBias!, crossPast);
            hidden = hidden.Plus(Dropout(attention, _config.DropoutRate));
            crossPresent = cross;
        }

        // T5LayerFF is the last layer of the block: layer.1 in the encoder, layer.2 in the decoder.
        var ff = encoderHiddenStates is null ? 1 : 2;
        hidden = LayerFF($"{path}.layer.{ff}", hidden);
        return (hidden, selfPresent, crossPresent);
    }

    // ---------------------------------------------------------------- T5Attention

    /// <summary>
    /// Multi-head attention without 1/sqrt(d) scaling (T5 folds it into the initialisation). Self-attention
    /// appends its new keys/values to any past; cross-attention follows T5Attention.project: a past whose length
    /// equals the encoder's is the cached keys/values, any other length (a prefix-tuning prefix) is ignored and
    /// the keys/values are projected from the encoder states.
    /// </summary>
    private (Tensor Output, (Tensor Key, Tensor Value) Present) Attention(string path, Tensor hidden, Tensor? keyValueStates,
        Tensor positionBias, (Tensor Key, Tensor Value)? past)
    {
        long batch = hidden.shape[0];
        int heads = _config.NumHeads, dKv = _config.DKv;
        Tensor Shape(Tensor x) => x.view(batch, -1, heads, dKv).transpose(1, 2);

        var query = Shape(Linears.Forward($"{path}.q", hidden));
        Tensor key, value;
        if (keyValueStates is null)
        {
            key = Shape(Linears.Forward($"{path}.k", hidden));
            value = Shape(Linears.Forward($"{path}.v", hidden));
            if (past is { } sp)
            {
                key = cat([sp.Key, key], 2);
                value = cat([sp.Value, value], 2);
            }
        }
        else if (past is { } cp && cp.Key.shape[2] == keyValueStates.shape[1])
        {
            // New handles on the cached tensors: the caller disposes the old cache once it has the new one.
            key = cp.Key.alias();
            value = cp.Value.alias();
        }
        else
        {
            key = Shape(Linears.Forward($"{path}.k", keyValueStates));
            value = Shape(Linears.Forward($"{path}.v", keyValueStates));
        }

        var scores = matmul(query, key.transpose(3, 2));
        scores = scores.Plus(positionBias);
        var weights = nn.functional.softmax(scores.to(float32), -1).type_as(scores);
        weights = Dropout(weights, _config.DropoutRate);

        var output = matmul(weights, value).transpose(1, 2).contiguous().view(batch, -1, heads * dKv);
        return (Linears.Forward($"{path}.o", output), (key, value));
    }

    /// <summary>
    /// transformers' compute_bias: bucket (memory - query) for every pair, look the buckets up in the
    /// [num_buckets, heads] table, and return [1, heads, queries, keys].
    /// </summary>
    private Tensor ComputeBias(Tensor table, long queryLength, long keyLength, bool bidirectional)
    {
        var context = ScalarOperands.Arange(0, queryLength, dtype: int64, device: table.device)[.., TensorIndex.None];
        var memory = ScalarOperands.Arange(0, keyLength, dtype: int64, device: table.device)[TensorIndex.None, ..];
        var buckets = RelativePositionBucket(memory - context, bidirectional,
            _config.RelativeAttentionNumBuckets, _config.RelativeAttentionMaxDistance);
        var values = table.index_select(0, buckets.reshape(-1)).reshape(queryLength, keyLength, table.shape[1]);
        return values.permute(2, 0, 1).unsqueeze(0);
    }

    /// <summary>
    /// T5Attention._relative_position_bucket (from Mesh TensorFlow): relative position = memory - query.
    /// Bidirectional (encoder) uses half the buckets per direction, positive offsets in the upper half;
    /// unidirectional (decoder) maps every future offset to bucket 0. Within a direction, the first half of
    /// the buckets are exact distances, the rest grow logarithmically up to max_distance, beyond which all
    /// distances share the last bucket.
    /// </summary>
    public static Tensor RelativePositionBucket(Tensor relativePosition, bool bidirectional, int numBuckets, int maxDistance)
    {
        var buckets = zeros_like(relativePosition);
        if (bidirectional)
        {
            numBuckets /= 2;
            buckets = buckets.Plus(relativePosition.Greater(0).to(int64).Times(numBuckets));
            relativePosition = relativePosition.abs();
        }
        else
        {
            relativePosition = -minimum(relativePosition, zeros_like(relativePosition));
        }
        int maxExact = numBuckets / 2;
        var isSmall = relativePosition.Less(maxExact);
        // Float32 arithmetic in the order transformers uses, so the truncation lands on the same bucket.
        var ifLarge = log(relativePosition.to(float32).Over(maxExact)).Over(Math.Log((double)maxDistance / maxExact))
            .Times(numBuckets - maxExact).to(int64).Plus(maxExact);
        using (var lastBucket = (numBuckets - 1).ToScalar()) ifLarge = minimum(ifLarge, full_like(ifLarge, lastBucket));
        return buckets.Plus(where(isSmall, relativePosition, ifLarge));
    }

    // ---------------------------------------------------------------- T5LayerFF, T5LayerNorm, masks

    /// <summary>Pre-norm feed-forward with a residual: DenseReluDense (wi, act, wo) or the gated variant (act(wi_0) * wi_1, wo).</summary>
    private Tensor LayerFF(string path, Tensor hidden)
    {
        var x = LayerNorm($"{path}.layer_norm.weight", hidden);
        var ff = $"{path}.DenseReluDense";
        x = _config.IsGatedAct
            ? Activations.Get(_config.DenseActFn)(Linears.Forward($"{ff}.wi_0", x)) * Linears.Forward($"{ff}.wi_1", x)
            : Activations.Get(_config.DenseActFn)(Linears.Forward($"{ff}.wi", x));
        x = Dropout(x, _config.DropoutRate);
        x = Linears.Forward($"{ff}.wo", x);
        return hidden.Plus(Dropout(x, _config.DropoutRate));
    }

    /// <summary>T5LayerNorm: RMS norm without mean subtraction or bias, the variance taken in float32.</summary>
    private Tensor LayerNorm(string weightName, Tensor hidden)
    {
        var variance = hidden.to(float32).Pow(2).mean([-1], keepdim: true);
        hidden = hidden * rsqrt(variance.Plus(_config.LayerNormEpsilon));
        return Parameters[weightName] * hidden;
    }

    /// <summary>invert_attention_mask: 1 -> 0, 0 -> float32 min, to be added to the scores.</summary>
    private static Tensor InvertMask(Tensor mask) => mask.to(float32).SubtractedFrom(1.0).Times(float.MinValue);

    /// <summary>
    /// The decoder's extended mask [B, 1, T, past + T]: causal among the current positions, every past position
    /// visible (a prefix or the cache), multiplied by the decoder attention mask, then inverted.
    /// </summary>
    private static Tensor CausalMask(Tensor mask, long length)
    {
        long total = mask.shape[1], pastLength = total - length;
        var causal = ones(length, length, dtype: float32, device: mask.device).tril();
        if (pastLength > 0) causal = cat([ones(length, pastLength, dtype: float32, device: mask.device), causal], 1);
        var extended = causal[TensorIndex.None, TensorIndex.None, .., ..] * mask.to(float32)[.., TensorIndex.None, TensorIndex.None, ..];
        return extended.SubtractedFrom(1.0).Times(float.MinValue);
    }
}
