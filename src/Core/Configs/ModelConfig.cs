using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Families;

namespace Peft.Onnx.Core.Configs;

/// <summary>
/// A Hugging Face config.json. Subclasses are one per family (in the family's folder); their properties map 1:1 to
/// the JSON keys (snake_case) and carry transformers 4.33's defaults for keys the file leaves out.
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

    /// <summary>The facts of this config's model_type.</summary>
    [JsonIgnore] public abstract ModelFamily Family { get; }

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
        if (!ok) throw new PeftOnnxException($"{SourcePath}: {key} = {Show(value)} is out of range (expected {expected})");
    }

    /// <summary>A dropout rate: torch.nn.Dropout refuses p outside [0, 1] when the model is built.</summary>
    protected void RequireProbability(double value, string key) =>
        Require(value is >= 0 and <= 1, key, value, "a probability in [0, 1]");

    /// <summary>A norm's epsilon: NaN, infinite or negative values turn every output into NaN or worse.</summary>
    protected void RequireEpsilon(double value, string key) =>
        Require(double.IsFinite(value) && value >= 0, key, value, "a small non-negative number such as 1e-05");

    /// <summary>A name transformers' ACT2FN knows; transformers fails with a KeyError on any other when the model is built.</summary>
    protected void RequireActivation(string? name, string key) =>
        Require(name is not null && ActivationNames.Contains(name), key, name is null ? "null" : MessageText.Quote(name), $"one of {string.Join(", ", ActivationNames)}");

    /// <summary>A token id the model looks up in its embeddings (so it must be inside the vocabulary).</summary>
    protected void RequireTokenId(int? id, string key, int vocabSize) =>
        Require(id is null || (id >= 0 && id < vocabSize), key, id ?? 0, $"a token id in [0, {vocabSize}) (vocab_size = {vocabSize})");

    /// <summary>transformers 4.33 ACT2FN keys (activations.py) that the trainer and the exporter both implement.</summary>
    public static readonly IReadOnlyList<string> ActivationNames =
    [
        "gelu", "gelu_python", "gelu_new", "gelu_accurate", "gelu_fast", "gelu_pytorch_tanh", "gelu_10", "quick_gelu",
        "relu", "relu2", "relu6", "leaky_relu", "silu", "swish", "mish", "sigmoid", "tanh", "linear",
    ];

    /// <summary>A value as the file spells it (invariant culture: 1E-05, NaN, -Infinity).</summary>
    private static string Show(object value) => value switch
    {
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "null",
    };

    /// <summary>
    /// The positions the model can compute, where a learned absolute position table limits them;
    /// null for RoPE, ALiBi and relative buckets, which transformers runs at any length.
    /// </summary>
    [JsonIgnore] public virtual PositionTable? PositionTable => null;

    /// <summary>The most positions the model was trained for (a position table's size, or RoPE's trained length); null when the config names none.</summary>
    [JsonIgnore] public virtual ContextWindow? ContextWindow => null;

    /// <summary>The token an encoder-decoder's decoder starts from: decoder_start_token_id, else the pad token, else 0.</summary>
    [JsonIgnore] public int DecoderStartId => DecoderStartTokenId ?? PadTokenId ?? 0;

    /// <summary>Width of the token embeddings (what a soft prompt's rows hold); the hidden size unless the family projects them.</summary>
    [JsonIgnore] public virtual int InputEmbeddingWidth => Dimensions.HiddenSize;

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
                throw new PeftOnnxException($"{path}: missing required key 'model_type' (expected one of {FamilyRegistry.ModelTypeList})");
            modelType = mt.GetString();
            ConfigJson.CheckStrings(doc.RootElement);
        }
        catch (JsonException ex) { throw ConfigJson.Invalid(path, ex); }
        catch (InvalidOperationException ex) { throw new PeftOnnxException($"{path}: invalid JSON text ({ex.Message.Split('\n')[0]})"); }

        if (modelType is null || FamilyRegistry.Find(modelType) is not { } family)
            throw new PeftOnnxException($"{path}: unknown model_type {MessageText.Quote(modelType)} (expected one of {FamilyRegistry.ModelTypeList})");
        var config = (ModelConfig)ConfigJson.Deserialize(json, family.ConfigType, path);
        config = config with { SourcePath = path };
        config.Validate();
        return config;
    }
}
