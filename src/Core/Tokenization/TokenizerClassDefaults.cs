namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// The transformers 4.33 tokenizer classes we reproduce, with the defaults their __init__ applies when the folder's
/// config files say nothing (the slow and fast class of a family share them).
/// </summary>
internal sealed record TokenizerClassDefaults(
    string Name,
    string? Bos, string? Eos, string? Unk, string? Pad,
    bool WrapsStringTokens,
    bool AddBosDefault, bool AddEosDefault,
    bool CleanUpDefault,
    int ExtraIdsDefault)
{
    /// <summary>GPT2Tokenizer (also OPT, BLOOM slow files): nothing added unless add_bos_token.</summary>
    public static readonly TokenizerClassDefaults Gpt2 = new("GPT2Tokenizer", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>", null,
        WrapsStringTokens: true, AddBosDefault: false, AddEosDefault: false, CleanUpDefault: true, ExtraIdsDefault: 0);

    /// <summary>LlamaTokenizer (legacy): bos prepended, clean-up off.</summary>
    public static readonly TokenizerClassDefaults Llama = new("LlamaTokenizer", "<s>", "</s>", "<unk>", null,
        WrapsStringTokens: true, AddBosDefault: true, AddEosDefault: false, CleanUpDefault: false, ExtraIdsDefault: 0);

    /// <summary>T5Tokenizer (legacy): eos appended unless already last, 100 &lt;extra_id_N&gt; sentinels.</summary>
    public static readonly TokenizerClassDefaults T5 = new("T5Tokenizer", null, "</s>", "<unk>", "<pad>",
        WrapsStringTokens: false, AddBosDefault: false, AddEosDefault: true, CleanUpDefault: true, ExtraIdsDefault: 100);

    /// <summary>BloomTokenizerFast (tokenizer.json only).</summary>
    public static readonly TokenizerClassDefaults Bloom = new("BloomTokenizerFast", "<s>", "</s>", "<unk>", "<pad>",
        WrapsStringTokens: false, AddBosDefault: false, AddEosDefault: false, CleanUpDefault: true, ExtraIdsDefault: 0);

    public bool IsT5 => ReferenceEquals(this, T5);
    public bool IsLlama => ReferenceEquals(this, Llama);

    /// <summary>The family of a tokenizer_class name ("T5TokenizerFast", "LlamaTokenizer", ...), null when unknown.</summary>
    public static TokenizerClassDefaults? ForName(string? name) =>
        name == null ? null
        : name.Contains("T5", StringComparison.OrdinalIgnoreCase) ? T5
        : name.Contains("Llama", StringComparison.OrdinalIgnoreCase) ? Llama
        : name.Contains("GPT2", StringComparison.OrdinalIgnoreCase) ? Gpt2
        : name.Contains("Bloom", StringComparison.OrdinalIgnoreCase) ? Bloom
        : null;

    /// <summary>The sentencepiece class named by tokenizer_config.json, else the one its file name implies.</summary>
    public static TokenizerClassDefaults ForSentencePiece(string? configuredClass, string fileName) =>
        ForName(configuredClass) is { } known && (known.IsT5 || known.IsLlama) ? known
        : fileName == "spiece.model" ? T5 : Llama;
}
