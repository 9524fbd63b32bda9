namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// A tokenizer.json's added_tokens plus the special tokens its tokenizer_config.json / special_tokens_map.json (or
/// the tokenizer class) declare, with their ids and the id-to-text table used for decoding. A declared token the
/// file lacks gets the next free id, as transformers adds it.
/// </summary>
internal sealed class JsonAddedVocabulary
{
    private readonly Dictionary<string, int> _idOf;
    private readonly Dictionary<string, int> _idByRole = new();

    private JsonAddedVocabulary(Dictionary<string, int> idOf, Dictionary<int, string> tokenById)
    {
        _idOf = idOf;
        TokenById = tokenById;
        Size = tokenById.Count == 0 ? 0 : tokenById.Keys.Max() + 1;
    }

    public List<AddedToken> Tokens { get; } = [];
    public HashSet<int> SpecialIds { get; } = [];
    public Dictionary<int, string> TokenById { get; }
    public int Size { get; private set; }

    public int? IdOf(string role) => _idByRole.TryGetValue(role, out int id) ? id : null;

    public bool TryGetId(string content, out int id) => _idOf.TryGetValue(content, out id);

    public static JsonAddedVocabulary Build(IReadOnlyDictionary<string, int> modelVocabulary, IReadOnlyList<AddedToken> addedTokens,
        TokenizerConfigFiles config, TokenizerClassDefaults? cls)
    {
        var idOf = new Dictionary<string, int>(modelVocabulary, StringComparer.Ordinal);
        var tokenById = new Dictionary<int, string>();
        foreach (var (token, id) in modelVocabulary) tokenById.TryAdd(id, token);
        foreach (var token in addedTokens)
        {
            tokenById[token.Id] = token.Content;
            idOf[token.Content] = token.Id;
        }

        var vocabulary = new JsonAddedVocabulary(idOf, tokenById);
        vocabulary.Tokens.AddRange(addedTokens);
        vocabulary.SpecialIds.UnionWith(addedTokens.Where(t => t.Special).Select(t => t.Id));

        var defaults = new Dictionary<string, string?>
        {
            ["bos_token"] = cls?.Bos, ["eos_token"] = cls?.Eos, ["unk_token"] = cls?.Unk, ["pad_token"] = cls?.Pad,
        };
        var declared = new List<DeclaredToken>();
        foreach (var role in TokenizerConfigFiles.SpecialTokenKeys)
        {
            if (config.SpecialToken(role, defaults.GetValueOrDefault(role), classWrapsStrings: true) is not { } token) continue;
            vocabulary._idByRole[role] = vocabulary.IdFor(token.Content);
            declared.Add(token);
        }
        declared.AddRange(config.AdditionalSpecialTokens([]));
        foreach (var token in declared)
        {
            int id = vocabulary.IdFor(token.Content);
            vocabulary.SpecialIds.Add(id);
            // transformers registers a declared token missing from added_tokens as AddedToken(content, special=True):
            // no stripping, unlike the slow tokenizers' plain strings.
            if (!vocabulary.Tokens.Any(t => t.Content == token.Content))
                vocabulary.Tokens.Add(new AddedToken(token.Content, id, Special: true));
        }
        return vocabulary;
    }

    private int IdFor(string content)
    {
        if (_idOf.TryGetValue(content, out int id)) return id;
        id = Size++;
        _idOf[content] = id;
        TokenById[id] = content;
        return id;
    }
}
