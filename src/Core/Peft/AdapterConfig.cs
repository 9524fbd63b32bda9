using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// A PEFT adapter_config.json: the keys every method shares (PEFT 0.7.1's PeftConfig). One subclass per method
/// holds that method's keys, with PEFT 0.7.1's defaults; properties map 1:1 to the JSON keys (snake_case).
/// Keys this version does not model are kept and written back, so a config survives load and save unchanged.
/// </summary>
public abstract record AdapterConfig
{
    public const string FileName = AdapterFormat.ConfigFile;

    public const string CausalLm = "CAUSAL_LM";
    public const string Seq2SeqLm = "SEQ_2_SEQ_LM";

    /// <summary>peft_type as written in the file, and the record type that holds it.</summary>
    private static readonly FrozenDictionary<string, Type> Known = new Dictionary<string, Type>
    {
        [LoraConfig.Type] = typeof(LoraConfig),
        [Ia3Config.Type] = typeof(Ia3Config),
        [PromptTuningConfig.Type] = typeof(PromptTuningConfig),
        [PromptEncoderConfig.Type] = typeof(PromptEncoderConfig),
        [PrefixTuningConfig.Type] = typeof(PrefixTuningConfig),
        [LoHaConfig.Type] = typeof(LoHaConfig),
        [LoKrConfig.Type] = typeof(LoKrConfig),
        [VeraConfig.Type] = typeof(VeraConfig),
        [AdaLoraConfig.Type] = typeof(AdaLoraConfig),
        [OftConfig.Type] = typeof(OftConfig),
        [BoftConfig.Type] = typeof(BoftConfig),
        [HraConfig.Type] = typeof(HraConfig),
        [FourierFtConfig.Type] = typeof(FourierFtConfig),
    }.ToFrozenDictionary();

    /// <summary>The peft_type values this project reads, in PEFT's spelling.</summary>
    public static IReadOnlyList<string> KnownPeftTypes { get; } = [LoraConfig.Type, Ia3Config.Type, PromptTuningConfig.Type, PromptEncoderConfig.Type, PrefixTuningConfig.Type,
        LoHaConfig.Type, LoKrConfig.Type,
        VeraConfig.Type, AdaLoraConfig.Type, OftConfig.Type, HraConfig.Type, FourierFtConfig.Type, BoftConfig.Type];

    public string PeftType { get; init; } = "";
    public string? TaskType { get; init; }
    public string? BaseModelNameOrPath { get; init; }
    public string? Revision { get; init; }
    public bool InferenceMode { get; init; }

    /// <summary>Set by PEFT for custom (non-transformers) base models; kept as written.</summary>
    public JsonElement? AutoMapping { get; init; }

    /// <summary>Keys this record does not model (newer PEFT versions, user additions), written back on save.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>Where this config was read from (for messages); not a JSON key.</summary>
    [JsonIgnore] public string SourcePath { get; init; } = FileName;

    /// <summary>True for prompt tuning, p-tuning and prefix tuning (PEFT's is_prompt_learning).</summary>
    [JsonIgnore] public bool IsPromptLearning => this is PromptLearningConfig;

    /// <summary>
    /// Positions the adapter's virtual tokens take before the input on a decoder-only model (a soft prompt's rows or
    /// a prefix's cached keys: PEFT's forward counts them in the position ids); 0 for LoRA and IA3.
    /// </summary>
    [JsonIgnore] public virtual int VirtualTokensBeforeInput => 0;

    /// <summary>The peft_type value of this record's method ("LORA", ...).</summary>
    protected abstract string MethodPeftType { get; }

    /// <summary>Reads adapter_config.json from a folder (or the file itself) and checks its values.</summary>
    public static AdapterConfig Load(string dirOrFile)
    {
        var path = Directory.Exists(dirOrFile) ? Path.Combine(dirOrFile, FileName) : dirOrFile;
        if (!File.Exists(path)) throw new PeftOnnxException($"{path}: file not found (expected a PEFT {FileName})");
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses adapter_config.json bytes, dispatching on peft_type, and checks the values.</summary>
    public static AdapterConfig Parse(byte[] json, string path)
    {
        try { return ParseChecked(json, path); }
        catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }
    }

    private static AdapterConfig ParseChecked(byte[] json, string path)
    {
        string? peftType;
        try
        {
            using var doc = JsonDocument.Parse(json, ConfigJson.DocumentOptions);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new PeftOnnxException($"{path}: expected a JSON object");
            if (!doc.RootElement.TryGetProperty("peft_type", out var pt))
                throw new PeftOnnxException($"{path}: missing required key 'peft_type' (expected one of {string.Join(", ", KnownPeftTypes)})");
            peftType = pt.ValueKind == JsonValueKind.String ? pt.GetString() : pt.GetRawText();
            ConfigJson.CheckStrings(doc.RootElement);
        }
        catch (JsonException ex) { throw ConfigJson.Invalid(path, ex); }
        catch (InvalidOperationException ex) { throw new PeftOnnxException($"{path}: invalid JSON text ({ex.Message.Split('\n')[0]})"); }

        if (peftType is null || !Known.TryGetValue(peftType, out var type))
            throw new PeftOnnxException($"{path}: unknown peft_type {MessageText.Quote(peftType)} (expected one of {string.Join(", ", KnownPeftTypes)})");
        var config = (AdapterConfig)ConfigJson.Deserialize(json, type, path);
        config = config with { SourcePath = path };
        config.Validate();
        return config;
    }

    /// <summary>
    /// Writes adapter_config.json into <paramref name="dir"/> atomically, formatted as PEFT's save_pretrained
    /// writes it (json.dumps(sort_keys=True, indent=2)).
    /// </summary>
    public void Save(string dir) => AtomicFile.WriteAllText(Path.Combine(dir, FileName), ToJson());

    /// <summary>The file's text: every key of this PEFT version, the keys kept from the file, sorted.</summary>
    public string ToJson() => PythonJson.Dumps(JsonSerializer.SerializeToElement(this, GetType(), ConfigJson.Options));

    /// <summary>Checks the values as PEFT (or the torch module it builds) would, with one-line messages.</summary>
    public virtual void Validate()
    {
        if (PeftType != MethodPeftType)
            throw new PeftOnnxException($"{SourcePath}: peft_type '{PeftType}' does not match {GetType().Name} (expected '{MethodPeftType}')");
    }

    /// <summary>
    /// The config as PEFT holds it after attaching it to this base model (get_peft_model), i.e. as its
    /// save_pretrained writes it apart from inference_mode: the values PEFT fills from the model are filled.
    /// </summary>
    public abstract AdapterConfig PreparedFor(Architecture arch);

    /// <summary>Trainable and total parameters as PEFT's print_trainable_parameters reports them while training.</summary>
    public abstract ParameterCount CountParameters(Architecture arch);

    protected PeftOnnxException Invalid(string key, object? value, string expected) =>
        new($"{SourcePath}: {key} = {Show(value)} is invalid (expected {expected})");

    protected void Require(bool ok, string key, object? value, string expected)
    {
        if (!ok) throw Invalid(key, value, expected);
    }

    /// <summary>A value as it appears in the JSON file.</summary>
    protected static string Show(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        bool b => b ? "true" : "false",
        double d => PythonFloat.Repr(d),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "null",
    };
}
