using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Onnx.Core.Configs;

/// <summary>
/// A Hugging Face config.json. Subclasses are one per family; their properties map 1:1 to the JSON keys
/// (snake_case) and carry transformers 4.33's defaults for keys the file leaves out.
/// </summary>
public abstract record ModelConfig
{
    public const string FileName = "config.json";

    public string ModelType { get; init; } = "";
    public string[]? Architectures { get; init; }
    public bool? TieWordEmbeddings { get; init; }
    public int? PadTokenId { get; init; }
    [JsonConverter(typeof(TokenIdsConverter))] public int[]? BosTokenId { get; init; }
    [JsonConverter(typeof(TokenIdsConverter))] public int[]? EosTokenId { get; init; }
    public int? DecoderStartTokenId { get; init; }
    public string? TorchDtype { get; init; }
    public bool UseCache { get; init; } = true;

    /// <summary>Keys this record does not model, kept so a config can be written back unchanged.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>Where this config was read from (for messages); not a JSON key.</summary>
    [JsonIgnore] public string SourcePath { get; init; } = FileName;

    public abstract ModelDimensions Dimensions { get; }
    public abstract bool IsEncoderDecoder { get; }
    public virtual bool TiesWordEmbeddings => TieWordEmbeddings ?? true;

    /// <summary>Checks the values are usable (positive sizes, heads divide the width, ...), naming the family's own keys.</summary>
    public abstract void Validate();

    protected void RequirePositive(int value, string key) => Require(value > 0, key, value, "a positive integer");

    /// <summary>More layers than any real checkpoint has (the largest have ~130): refused before the module tree is built.</summary>
    public const int MaxLayers = 1024;

    protected void RequireLayerCount(int value, string key) => Require(value is > 0 and <= MaxLayers, key, value, $"a positive integer up to {MaxLayers}");

    protected void Require(bool ok, string key, object value, string expected)
    {
        if (!ok) throw new PeftOnnxException($"{SourcePath}: {key} = {value} is out of range (expected {expected})");
    }

    public static ModelConfig Load(string dirOrFile)
    {
        var path = Directory.Exists(dirOrFile) ? Path.Combine(dirOrFile, FileName) : dirOrFile;
        if (!File.Exists(path)) throw new PeftOnnxException($"{path}: file not found (expected a Hugging Face config.json)");
        return Parse(File.ReadAllBytes(path), path);
    }

    public static ModelConfig Parse(byte[] json, string path)
    {
        try { return ParseChecked(json, path); }
        catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }
    }

    private static ModelConfig ParseChecked(byte[] json, string path)
    {
        string? modelType;
        try
        {
            using var doc = JsonDocument.Parse(json, ConfigJson.DocumentOptions);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new PeftOnnxException($"{path}: expected a JSON object");
            if (!doc.RootElement.TryGetProperty("model_type", out var mt) || mt.ValueKind != JsonValueKind.String)
                throw new PeftOnnxException($"{path}: missing required key 'model_type' (expected one of {string.Join(", ", Known.Keys)})");
            modelType = mt.GetString();
            ConfigJson.CheckStrings(doc.RootElement);
        }
        catch (JsonException ex) { throw ConfigJson.Invalid(path, ex); }
        catch (InvalidOperationException ex) { throw new PeftOnnxException($"{path}: invalid JSON text ({ex.Message.Split('\n')[0]})"); }

        if (modelType is null || !Known.TryGetValue(modelType, out var type))
            throw new PeftOnnxException($"{path}: unknown model_type {MessageText.Quote(modelType)} (expected one of {string.Join(", ", Known.Keys)})");
        var config = (ModelConfig)ConfigJson.Deserialize(json, type, path);
        config = config with { SourcePath = path };
        config.Validate();
        return config;
    }

    private static readonly Dictionary<string, Type> Known = new()
    {
        ["bloom"] = typeof(BloomConfig),
        ["gpt2"] = typeof(Gpt2Config),
        ["opt"] = typeof(OptConfig),
        ["llama"] = typeof(LlamaConfig),
        ["t5"] = typeof(T5Config),
        ["mt5"] = typeof(MT5Config),
    };
}

/// <summary>The sizes every family has under its own key names, for code that works across families.</summary>
public sealed record ModelDimensions(int VocabSize, int HiddenSize, int NumLayers, int NumHeads, int NumKeyValueHeads, int HeadDim)
{
    /// <summary>Decoder layers of an encoder-decoder (equal to NumLayers for decoder-only models).</summary>
    public int NumDecoderLayers { get; init; } = NumLayers;
}
