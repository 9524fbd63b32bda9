using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT 0.7.1's PrefixTuningConfig: trainable key/value prefixes for every layer, num_virtual_tokens long,
/// stored as one embedding row of num_layers * 2 * token_dim values per virtual token; with prefix_projection
/// the rows come from a two-layer MLP over a token_dim embedding while training.
/// </summary>
public sealed record PrefixTuningConfig : PromptLearningConfig
{
    public const string Type = "PREFIX_TUNING";

    public PrefixTuningConfig() => PeftType = Type;

    /// <summary>Hidden size of the projection MLP; null means token_dim (filled by <see cref="WithModelDefaults"/>).</summary>
    public int? EncoderHiddenSize { get; init; }

    public bool PrefixProjection { get; init; }

    protected override string MethodPeftType => Type;

    /// <summary>
    /// Fills the sizes from the model; under grouped-query attention the prefixes are per key/value head,
    /// as newer PEFT does (token_dim / heads * kv_heads, heads = kv_heads), so they fit the model's cache.
    /// Idempotent: a config already sized for the kv heads is left as it is. A missing encoder_hidden_size is the
    /// token_dim after that rewrite, as PEFT does (0.13.2 saves encoder_hidden_size = head_dim x kv heads).
    /// </summary>
    public override PrefixTuningConfig WithModelDefaults(ModelConfig model)
    {
        var filled = (PrefixTuningConfig)base.WithModelDefaults(model);
        var d = model.Dimensions;
        if (d.NumKeyValueHeads != d.NumHeads && filled.NumAttentionHeads is int heads && filled.TokenDim is int dim && heads > 0)
            filled = filled with { TokenDim = dim / heads * d.NumKeyValueHeads, NumAttentionHeads = d.NumKeyValueHeads };
        return filled with { EncoderHiddenSize = filled.EncoderHiddenSize ?? filled.TokenDim };
    }

    /// <summary>
    /// A prefix holds keys and values for every layer: num_layers is the layer count (an encoder-decoder's prefixes
    /// go to its decoder), num_attention_heads the attention or key/value heads, token_dim heads x head size.
    /// </summary>
    protected override void CheckSizesFit(ModelConfig model)
    {
        var d = model.Dimensions;
        if (NumLayers is { } layers && layers != d.NumLayers && layers != d.NumDecoderLayers)
            throw DoesNotFit(model, "num_layers", layers, d.NumLayers == d.NumDecoderLayers ? $"{d.NumLayers}, its layer count" : $"{d.NumDecoderLayers}, its decoder's layer count");
        if (NumAttentionHeads is { } heads && heads != d.NumHeads && heads != d.NumKeyValueHeads)
            throw DoesNotFit(model, "num_attention_heads", heads, d.NumHeads == d.NumKeyValueHeads ? $"{d.NumHeads}" : $"{d.NumHeads}, or its {d.NumKeyValueHeads} key/value heads");
        if (TokenDim is { } dim && dim != d.HiddenSize && dim != (long)(NumAttentionHeads ?? d.NumHeads) * d.HeadDim)
            throw DoesNotFit(model, "token_dim", dim, $"{d.HiddenSize}, its hidden size");
    }

    /// <summary>
    /// PrefixEncoder: Embedding(num_virtual_tokens, num_layers * 2 * token_dim); with prefix_projection
    /// Embedding(num_virtual_tokens, token_dim), Linear(token_dim, h), Tanh, Linear(h, num_layers * 2 * token_dim).
    /// Prefixes are per virtual token, not per submodule: T5's encoder and decoder share num_layers.
    /// </summary>
    protected override long PromptEncoderParameters()
    {
        checked
        {
            long tokens = Filled(NumVirtualTokens, "num_virtual_tokens"), dim = Filled(TokenDim, "token_dim");
            long keyValues = Filled(NumLayers, "num_layers") * 2 * dim;
            if (!PrefixProjection) return tokens * keyValues;
            long h = Filled(EncoderHiddenSize, "encoder_hidden_size");
            return tokens * dim + (dim * h + h) + (h * keyValues + keyValues);
        }
    }

    public override void Validate()
    {
        base.Validate();
        RequirePositiveOrNull(EncoderHiddenSize, "encoder_hidden_size");
    }
}
