using Peft.Onnx.Core.Families;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// A transformers 4.33 tokenizer class we reproduce, with the defaults its __init__ applies when the folder's config
/// files say nothing (a slow class and its fast class share them). Each family names its class; the registry lists them.
/// </summary>
internal sealed record TokenizerClassDefaults(
    string Name,
    string? Bos, string? Eos, string? Unk, string? Pad,
    bool WrapsStringTokens,
    bool AddBosDefault, bool AddEosDefault,
    bool CleanUpDefault,
    int ExtraIdsDefault)
{
    /// <summary>The vocabulary file the slow class reads (vocab.json beside merges.txt, or a sentencepiece model); null for a fast-only class.</summary>
    public string? SlowFile { get; init; }

    /// <summary>The slow class reads a sentencepiece model.</summary>
    public bool IsSentencePiece { get; init; }

    /// <summary>eos is appended only when the sequence does not already end with it.</summary>
    public bool EosOnlyIfAbsent { get; init; }

    /// <summary>Decoding strips every leading "▁" of the first token, not just one.</summary>
    public bool TrimsEveryLeadingSpace { get; init; }

    /// <summary>The fast class rebuilds its post-processor from add_bos_token / add_eos_token instead of reading tokenizer.json's.</summary>
    public bool RebuildsPostProcessor { get; init; }

    /// <summary>The class appends extra_ids sentinels (&lt;extra_id_N&gt;) after the vocabulary.</summary>
    public bool TakesExtraIds => ExtraIdsDefault > 0;

    /// <summary>The class name before "Tokenizer", matched anywhere in a tokenizer_class (so the fast class matches too).</summary>
    private string Stem => Name[..Name.IndexOf("Tokenizer", StringComparison.Ordinal)];

    /// <summary>The class of a tokenizer_class name (slow or fast), null when unknown.</summary>
    public static TokenizerClassDefaults? ForName(string? name) =>
        name == null ? null : FamilyRegistry.TokenizerClasses.FirstOrDefault(c => name.Contains(c.Stem, StringComparison.OrdinalIgnoreCase));

    /// <summary>The class whose slow files include <paramref name="fileName"/>.</summary>
    public static TokenizerClassDefaults ForSlowFile(string fileName) =>
        FamilyRegistry.TokenizerClasses.FirstOrDefault(c => c.SlowFile == fileName)
        ?? throw new InvalidOperationException($"no tokenizer class reads {fileName}");

    /// <summary>The sentencepiece class named by tokenizer_config.json, else the one its file name implies.</summary>
    public static TokenizerClassDefaults ForSentencePiece(string? configuredClass, string fileName) =>
        ForName(configuredClass) is { IsSentencePiece: true } known ? known : ForSlowFile(fileName);
}
