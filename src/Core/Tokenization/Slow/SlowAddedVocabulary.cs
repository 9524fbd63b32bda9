namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// A slow tokenizer's special and added tokens with their ids. Ids come from added_tokens.json, then the model's
/// vocabulary; a special token the vocabulary lacks gets the next free id, as transformers' sanitize_special_tokens
/// adds it. Every one of them is matched verbatim in the input (unique_no_split_tokens).
/// </summary>
internal sealed class SlowAddedVocabulary
{
    private readonly Dictionary<string, int> _idByRole = new();

    public List<AddedToken> Tokens { get; } = [];

    /// <summary>Tokens outside the model's vocabulary: decoded as their text, not by the model.</summary>
    public Dictionary<int, string> AddedContent { get; } = [];

    public HashSet<int> SpecialIds { get; } = [];
    public HashSet<string> SpecialContents { get; } = new(StringComparer.Ordinal);
    public int Size { get; private set; }

    public int? IdOf(string role) => _idByRole.TryGetValue(role, out int id) ? id : null;

    /// <param name="baseLookup">The model's id for a token string, or null when it has none.</param>
    /// <param name="baseSize">Ids the model itself uses (0..baseSize-1).</param>
    public static SlowAddedVocabulary Build(TokenizerConfigFiles config, TokenizerClassDefaults cls,
        IReadOnlyList<string> additionalDefault, Func<string, int?> baseLookup, int baseSize)
    {
        var vocabulary = new SlowAddedVocabulary { Size = baseSize };
        var addedIds = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (content, id) in config.AddedTokens.OrderBy(p => p.Value))
        {
            addedIds[content] = id;
            if (baseLookup(content) == null) vocabulary.AddedContent[id] = content;
            vocabulary.Size = Math.Max(vocabulary.Size, id + 1);
        }

        int Resolve(string content)
        {
            if (addedIds.TryGetValue(content, out int id)) return id;
            if (baseLookup(content) is int known) return known;
            id = vocabulary.Size++;
            addedIds[content] = id;
            vocabulary.AddedContent[id] = content;
            return id;
        }

        var defaults = new Dictionary<string, string?>
        {
            ["bos_token"] = cls.Bos, ["eos_token"] = cls.Eos, ["unk_token"] = cls.Unk, ["pad_token"] = cls.Pad,
        };
        var specials = new List<DeclaredToken>();
        foreach (var role in TokenizerConfigFiles.SpecialTokenKeys)
        {
            var token = config.SpecialToken(role, defaults.GetValueOrDefault(role), cls.WrapsStringTokens);
            if (token == null) continue;
            vocabulary._idByRole[role] = Resolve(token.Content);
            specials.Add(token);
        }
        specials.AddRange(config.AdditionalSpecialTokens(additionalDefault));

        foreach (var token in specials)
        {
            int id = Resolve(token.Content);
            vocabulary.SpecialIds.Add(id);
            vocabulary.SpecialContents.Add(token.Content);
            vocabulary.Tokens.Add(new AddedToken(token.Content, id, Special: true, token.LStrip, token.RStrip, token.SingleWord));
        }
        // Plain added tokens have no AddedToken record in the slow tokenizer, so they strip both sides.
        foreach (var (content, id) in addedIds.Where(p => !vocabulary.SpecialContents.Contains(p.Key)))
            vocabulary.Tokens.Add(new AddedToken(content, id, Special: false, LStrip: true, RStrip: true));
        return vocabulary;
    }
}
