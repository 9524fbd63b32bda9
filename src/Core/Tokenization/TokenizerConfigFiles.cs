using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>A special token as declared in tokenizer_config.json / special_tokens_map.json, with its strip rules.</summary>
internal sealed record DeclaredToken(string Content, bool LStrip, bool RStrip, bool SingleWord = false);

/// <summary>
/// tokenizer_config.json, special_tokens_map.json and added_tokens.json of a checkpoint folder (each optional), and
/// how transformers 4.33 resolves special tokens from them: the class default, replaced by tokenizer_config.json,
/// replaced again by special_tokens_map.json (which from_pretrained applies after construction). A token given as
/// a plain string ends up a str in the slow tokenizer and strips whitespace on both sides; one given as an object
/// keeps its lstrip/rstrip; a class that wraps string defaults in AddedToken (<see cref="TokenizerClassDefaults.WrapsStringTokens"/>) strips nothing.
/// </summary>
internal sealed class TokenizerConfigFiles
{
    public const string ConfigFile = "tokenizer_config.json";
    public const string MapFile = "special_tokens_map.json";
    public const string AddedTokensFile = "added_tokens.json";

    public static readonly string[] SpecialTokenKeys =
        ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    private readonly string _dir;

    private TokenizerConfigFiles(string dir, JsonElement config, JsonElement map, IReadOnlyDictionary<string, int> addedTokens)
    {
        _dir = dir;
        Config = config;
        Map = map;
        AddedTokens = addedTokens;
    }

    public JsonElement Config { get; }
    public JsonElement Map { get; }

    /// <summary>added_tokens.json: content to id.</summary>
    public IReadOnlyDictionary<string, int> AddedTokens { get; }

    public string? TokenizerClass => Guard(ConfigFile, () => JsonFields.String(Config, "tokenizer_class"));

    public static TokenizerConfigFiles Read(string dir)
    {
        var config = ReadObject(dir, ConfigFile);
        var map = ReadObject(dir, MapFile);
        var addedPath = Path.Combine(dir, AddedTokensFile);
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (File.Exists(addedPath))
        {
            TokenizerFileError.Guard(addedPath, () =>
            {
                using var doc = JsonFields.ParseFile(addedPath);
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException("expected a JSON object of token: id");
                foreach (var p in doc.RootElement.EnumerateObject()) added[p.Name] = p.Value.GetInt32();
                return 0;
            });
        }
        return new TokenizerConfigFiles(dir, config, map, added);
    }

    public bool? ConfigBool(string key) => Guard(ConfigFile, () => JsonFields.Bool(Config, key));
    public int? ConfigInt(string key) => Guard(ConfigFile, () => JsonFields.Int(Config, key));

    /// <summary>The special token named <paramref name="key"/> ("bos_token", ...), or null when unset.</summary>
    /// <param name="classDefault">The tokenizer class's default content.</param>
    /// <param name="classWrapsStrings">Whether the class's __init__ turns a string into AddedToken(lstrip=False, rstrip=False).</param>
    public DeclaredToken? SpecialToken(string key, string? classDefault, bool classWrapsStrings)
    {
        DeclaredToken? token = classDefault == null ? null : FromString(classDefault, classWrapsStrings);
        if (Config.ValueKind == JsonValueKind.Object && Config.TryGetProperty(key, out var fromConfig))
            token = Guard(ConfigFile, () => FromJson(fromConfig, key, classWrapsStrings));
        if (Map.ValueKind == JsonValueKind.Object && Map.TryGetProperty(key, out var fromMap))
            token = Guard(MapFile, () => FromJson(fromMap, key, wrapStrings: false));
        return token;
    }

    /// <summary>additional_special_tokens, resolved the same way (strings there are plain str).</summary>
    public IReadOnlyList<DeclaredToken> AdditionalSpecialTokens(IReadOnlyList<string> classDefault)
    {
        IReadOnlyList<DeclaredToken> tokens = classDefault.Select(s => FromString(s, wrap: false)).ToList();
        const string key = "additional_special_tokens";
        if (Config.ValueKind == JsonValueKind.Object && Config.TryGetProperty(key, out var fromConfig) && fromConfig.ValueKind == JsonValueKind.Array)
            tokens = Guard(ConfigFile, () => ListFromJson(fromConfig, key));
        if (Map.ValueKind == JsonValueKind.Object && Map.TryGetProperty(key, out var fromMap) && fromMap.ValueKind == JsonValueKind.Array)
            tokens = Guard(MapFile, () => ListFromJson(fromMap, key));
        return tokens;
    }

    private static IReadOnlyList<DeclaredToken> ListFromJson(JsonElement array, string key) =>
        array.EnumerateArray().Select(e => FromJson(e, key, wrapStrings: false)).OfType<DeclaredToken>().ToList();

    private static DeclaredToken FromString(string content, bool wrap) => new(content, LStrip: !wrap, RStrip: !wrap);

    private static DeclaredToken? FromJson(JsonElement value, string key, bool wrapStrings) => value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.String => FromString(value.GetString()!, wrapStrings),
        JsonValueKind.Object => new DeclaredToken(
            JsonFields.String(value, "content") ?? throw new InvalidDataException($"'{key}' has no 'content'"),
            JsonFields.Bool(value, "lstrip") ?? false,
            JsonFields.Bool(value, "rstrip") ?? false,
            JsonFields.Bool(value, "single_word") ?? false),
        _ => throw new InvalidDataException($"'{key}' should be a string or an AddedToken object"),
    };

    private T Guard<T>(string file, Func<T> read) => TokenizerFileError.Guard(Path.Combine(_dir, file), read);

    private static JsonElement ReadObject(string dir, string file)
    {
        var path = Path.Combine(dir, file);
        if (!File.Exists(path)) return default;
        return TokenizerFileError.Guard(path, () =>
        {
            using var doc = JsonFields.ParseFile(path);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException("expected a JSON object");
            return doc.RootElement.Clone();
        });
    }
}
