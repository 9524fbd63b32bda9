using System.Text.Json;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// The LoraConfig keys PEFT 0.8 to 0.20 added, read from (and written into) the config's kept keys so that a file
/// is saved back byte for byte as its PEFT wrote it. Each key either has its semantics implemented (use_dora,
/// lora_bias, exclude_modules), changes nothing this project computes (peft_version, runtime_config, the configs of
/// initialisations that only run when a fresh adapter is created), or is refused before any compute when set.
/// </summary>
public static class LoraNewerKeys
{
    public const string UseDora = "use_dora";
    public const string LoraBias = "lora_bias";
    public const string ExcludeModules = "exclude_modules";

    /// <summary>Keys that change the computation when not null/false/empty, with what they would need.</summary>
    private static readonly (string Key, string Needs)[] Refused =
    [
        ("layer_replication", "layer replication (duplicated decoder layers sharing weights)"),
        ("trainable_token_indices", "trainable token embeddings"),
        ("target_parameters", "adapters on parameters (nn.Parameter targets)"),
        ("use_qalora", "QA-LoRA's pooled input"),
        ("alora_invocation_tokens", "activated LoRA (the adapter switched on by invocation tokens)"),
        ("arrow_config", "Arrow routing between adapters"),
        ("use_bdlora", "block-diagonal LoRA"),
        ("monteclora_config", "MonteCLoRA's sampled adapters"),
        ("velora_config", "VeLoRA's compressed activations"),
        ("lora_ga_config", "LoRA-GA's initialisation, which rewrites the base weights"),
        ("ensure_weight_tying", "tying adapted copies of tied embeddings"),
    ];

    /// <summary>A boolean key; absent or null reads as false.</summary>
    public static bool Flag(Dictionary<string, JsonElement>? extra, string key) =>
        extra is not null && extra.TryGetValue(key, out var v) && v.ValueKind == JsonValueKind.True;

    /// <summary>A target_modules-like key (null, a regex string or a list of names); absent reads as null.</summary>
    public static TargetModules? Modules(Dictionary<string, JsonElement>? extra, string key, string sourcePath)
    {
        if (extra is null || !extra.TryGetValue(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.String) return TargetModules.FromPattern(v.GetString()!);
        if (v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
            return TargetModules.FromNames(v.EnumerateArray().Select(e => e.GetString()!));
        throw new PeftOnnxException($"{sourcePath}: {key} = {v.GetRawText()} is invalid (expected null, a regular expression (string) or a list of module names)");
    }

    /// <summary>A copy of <paramref name="extra"/> with <paramref name="key"/> set (the records are immutable: a copy made with `with` must not see the change).</summary>
    public static Dictionary<string, JsonElement> With(Dictionary<string, JsonElement>? extra, string key, JsonElement value) =>
        new(extra ?? [], StringComparer.Ordinal) { [key] = value.Clone() };

    /// <summary>Checks the types of the implemented keys and refuses every set key whose semantics are not implemented.</summary>
    public static void Validate(LoraConfig config)
    {
        var extra = config.Extra;
        if (extra is null) return;
        foreach (var key in new[] { UseDora, LoraBias })
            if (extra.TryGetValue(key, out var v) && v.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                throw new PeftOnnxException($"{config.SourcePath}: {key} = {v.GetRawText()} is invalid (expected true or false)");
        _ = Modules(extra, ExcludeModules, config.SourcePath);
        foreach (var (key, needs) in Refused)
            if (extra.TryGetValue(key, out var v) && IsSet(v))
                throw new PeftOnnxException($"{config.SourcePath}: {key} = {v.GetRawText()} is not supported (it needs {needs}, which is not implemented; expected it unset: null or false)");
    }

    private static bool IsSet(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.False or JsonValueKind.Undefined => false,
        JsonValueKind.Array => v.GetArrayLength() > 0,
        JsonValueKind.Object => v.EnumerateObject().Any(),
        _ => true,
    };
}
