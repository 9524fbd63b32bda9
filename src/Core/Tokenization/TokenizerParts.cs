namespace Peft.Onnx.Core.Tokenization;

/// <summary>What a loader assembles from a checkpoint folder for <see cref="HfTokenizer"/>.</summary>
internal sealed record TokenizerParts
{
    public required string Kind { get; init; }
    public required IChunkEncoder Encoder { get; init; }
    public required ITokenDecoder Decoder { get; init; }
    public required IReadOnlyList<AddedToken> AddedTokens { get; init; }
    public required SpecialTokenTemplate Template { get; init; }

    /// <summary>Ids that Decode(skipSpecialTokens: true) drops.</summary>
    public required IReadOnlySet<int> SpecialIds { get; init; }

    /// <summary>Highest id + 1 (base vocabulary plus added tokens).</summary>
    public required int VocabSize { get; init; }

    /// <summary>tokenizer_config.json clean_up_tokenization_spaces.</summary>
    public bool CleanUpSpaces { get; init; }

    /// <summary>GPT2Tokenizer's add_prefix_space: one space before the whole input, before special tokens are found.</summary>
    public bool PrefixSpaceBeforeText { get; init; }

    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int? PadId { get; init; }
    public int? UnkId { get; init; }
}
