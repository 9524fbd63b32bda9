using System.Text.Json;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT 0.7.1's PromptTuningConfig: a trainable embedding of num_virtual_tokens * num_transformer_submodules
/// rows, prepended to the input embeddings; initialised randomly or from the token embeddings of a text.
/// </summary>
public sealed record PromptTuningConfig : PromptLearningConfig
{
    public const string Type = "PROMPT_TUNING";
    public const string Random = "RANDOM";
    public const string Text = "TEXT";

    public PromptTuningConfig() => PeftType = Type;

    /// <summary>"RANDOM" or "TEXT".</summary>
    public string PromptTuningInit { get; init; } = Random;

    /// <summary>The text whose token embeddings initialise the prompt (TEXT init), repeated or cut to fit.</summary>
    public string? PromptTuningInitText { get; init; }

    public string? TokenizerNameOrPath { get; init; }

    /// <summary>Extra arguments for AutoTokenizer.from_pretrained (TEXT init only); kept as written.</summary>
    public JsonElement? TokenizerKwargs { get; init; }

    protected override string MethodPeftType => Type;

    /// <summary>PromptEmbedding: Embedding(total_virtual_tokens, token_dim).</summary>
    protected override long PromptEncoderParameters() => checked((long)Filled(NumVirtualTokens, "num_virtual_tokens") * Filled(NumTransformerSubmodules, "num_transformer_submodules") * Filled(TokenDim, "token_dim"));

    public override void Validate()
    {
        base.Validate();
        Require(PromptTuningInit is Random or Text, "prompt_tuning_init", PromptTuningInit, "\"RANDOM\" or \"TEXT\"");
        SafePath.RequireValidChars(TokenizerNameOrPath, "tokenizer_name_or_path", SourcePath);
        if (PromptTuningInit == Text && string.IsNullOrEmpty(PromptTuningInitText))
            throw new PeftOnnxException($"{SourcePath}: prompt_tuning_init is \"TEXT\" but prompt_tuning_init_text is {(PromptTuningInitText is null ? "missing" : "empty")} (give the text that initialises the prompt)");
        // PromptTuningConfig.__post_init__ (PEFT 0.7).
        if (TokenizerKwargs is { ValueKind: not JsonValueKind.Null } kwargs && PromptTuningInit != Text)
            throw new PeftOnnxException($"{SourcePath}: tokenizer_kwargs = {kwargs.GetRawText()} is only valid with prompt_tuning_init \"TEXT\"");
    }
}
