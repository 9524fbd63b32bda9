using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// Keys shared by the prompt-learning methods (PEFT 0.7.1's PromptLearningConfig). The sizes are usually left
/// null in a fresh config and filled from the base model when the adapter is attached
/// (<see cref="WithModelDefaults"/>); PEFT then saves them filled.
/// </summary>
public abstract record PromptLearningConfig : AdapterConfig
{
    /// <summary>Required; PEFT's default is None.</summary>
    public int? NumVirtualTokens { get; init; }

    /// <summary>Width of the virtual token embeddings (the model's hidden size).</summary>
    public int? TokenDim { get; init; }

    /// <summary>2 for encoder-decoder (SEQ_2_SEQ_LM: a prompt for the encoder and one for the decoder), else 1.</summary>
    public int? NumTransformerSubmodules { get; init; }

    public int? NumAttentionHeads { get; init; }
    public int? NumLayers { get; init; }

    [JsonIgnore] public override int VirtualTokensBeforeInput => NumVirtualTokens ?? 0;

    /// <summary>num_virtual_tokens * num_transformer_submodules: rows of the prompt embedding (filled config only).</summary>
    [JsonIgnore] public int TotalVirtualTokens => Filled(NumVirtualTokens, "num_virtual_tokens") * Filled(NumTransformerSubmodules, "num_transformer_submodules");

    /// <summary>
    /// PEFT 0.7.1's _prepare_prompt_learning_config plus PeftModel._setup_prompt_encoder's submodule count: each
    /// null size is taken from the base model's config. PEFT looks the keys up in config.to_dict() in the order
    /// num_hidden_layers | num_layers | n_layer, hidden_size | n_embd | d_model,
    /// num_attention_heads | n_head | num_heads | encoder_attention_heads, which for the supported families are the
    /// sizes <see cref="ModelConfig.Dimensions"/> reports (T5: num_layers, d_model, num_heads).
    /// </summary>
    public virtual PromptLearningConfig WithModelDefaults(ModelConfig model)
    {
        // The virtual tokens come first; a learned position table they fill leaves no position for any input.
        if (!model.IsEncoderDecoder && model.PositionTable is { } table && VirtualTokensBeforeInput >= table.Positions)
            throw new PeftOnnxException($"{SourcePath}: num_virtual_tokens = {VirtualTokensBeforeInput} fills the model's {table.Positions} positions ({table.SourcePath}: {table.Key} = {table.Positions}), leaving none for the input (expected fewer than {table.Positions})");
        var d = model.Dimensions;
        return this with
        {
            NumLayers = NumLayers ?? d.NumLayers,
            TokenDim = TokenDim ?? d.HiddenSize,
            NumAttentionHeads = NumAttentionHeads ?? d.NumHeads,
            NumTransformerSubmodules = NumTransformerSubmodules ?? (TaskType == Seq2SeqLm ? 2 : 1),
        };
    }

    /// <summary>
    /// Sizes the file states (a saved adapter's) that belong to another base: refused when the adapter is attached
    /// (counted, prepared), before any weight is read, naming both files. <see cref="WithModelDefaults"/> alone keeps
    /// them, as PEFT does; the tuners check them again against the loaded model. A soft prompt's rows are prepended to the input embeddings, so
    /// token_dim is their width (hidden_size; OPT's word_embed_proj_dim also passes here and the tuner decides).
    /// </summary>
    protected virtual void CheckSizesFit(ModelConfig model)
    {
        var d = model.Dimensions;
        int embeddingWidth = model.InputEmbeddingWidth;
        if (TokenDim is { } dim && dim != d.HiddenSize && dim != embeddingWidth)
            throw DoesNotFit(model, "token_dim", dim, $"{d.HiddenSize}, the width of its input embeddings");
    }

    /// <summary>A size of this adapter that the base model (<paramref name="model"/>) does not have.</summary>
    protected PeftOnnxException DoesNotFit(ModelConfig model, string key, int value, string expected) =>
        new($"{SourcePath}: {key} = {value} does not fit the base model {model.SourcePath} (expected {expected}): the adapter was made for another model");

    /// <summary>Attaching the adapter to this base: the sizes the file states must be the base's (<see cref="CheckSizesFit"/>).</summary>
    public override PromptLearningConfig PreparedFor(Architecture arch)
    {
        CheckSizesFit(arch.Config);
        return WithModelDefaults(arch.Config);
    }

    /// <summary>Parameters of the prompt encoder PEFT trains (prompt_encoder's modules), from a filled config.</summary>
    protected abstract long PromptEncoderParameters();

    /// <summary>The base model is frozen; PEFT's count adds the prompt encoder to it, all of it trainable.</summary>
    public override ParameterCount CountParameters(Architecture arch)
    {
        var prepared = PreparedFor(arch);
        long trainable;
        try { trainable = prepared.PromptEncoderParameters(); }
        catch (OverflowException) { throw new PeftOnnxException($"{SourcePath}: the sizes in this config give a prompt encoder of more than {long.MaxValue} parameters (check num_virtual_tokens, token_dim, num_layers, encoder_hidden_size)"); }
        return new ParameterCount(trainable, arch.CountParameters() + trainable);
    }

    public override void Validate()
    {
        base.Validate();
        if (NumVirtualTokens is null) throw new PeftOnnxException($"{SourcePath}: missing required key 'num_virtual_tokens' (expected a positive integer)");
        Require(NumVirtualTokens > 0, "num_virtual_tokens", NumVirtualTokens, "a positive integer");
        RequirePositiveOrNull(TokenDim, "token_dim");
        RequirePositiveOrNull(NumTransformerSubmodules, "num_transformer_submodules");
        RequirePositiveOrNull(NumAttentionHeads, "num_attention_heads");
        RequirePositiveOrNull(NumLayers, "num_layers");
    }

    protected void RequirePositiveOrNull(int? value, string key) =>
        Require(value is null or > 0, key, value, "a positive integer or null");

    /// <summary>A size that <see cref="WithModelDefaults"/> fills; null here means the caller skipped that step.</summary>
    protected int Filled(int? value, string key) =>
        value ?? throw new InvalidOperationException($"{SourcePath}: {key} is null; call WithModelDefaults(model config) first");
}
