using System.Collections.Frozen;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's on-disk adapter folder as save_pretrained writes it (PEFT 0.7.1): adapter_config.json beside
/// adapter_model.safetensors (metadata format=pt), tensors named as get_peft_model_state_dict names them. The trainer
/// writes and reads this format, the exporter reads it, and the bench writes random adapters in it.
/// </summary>
public static class AdapterFormat
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>The pickle PEFT writes with safe_serialization=False: never read (unpickling can run code).</summary>
    public const string PickleFile = "adapter_model.bin";

    /// <summary>PeftModel.base_model (the tuner) .model (the transformers model): the prefix of every injected-method name.</summary>
    public const string ModelPrefix = "base_model.model.";

    /// <summary>The adapter name PEFT gives a single adapter; it appears in named_parameters(), not in the saved file.</summary>
    public const string AdapterName = "default";

    /// <summary>The one tensor a prompt-learning method saves: the prompt module's output rows.</summary>
    public const string PromptEmbeddings = "prompt_embeddings";

    /// <summary>named_parameters() prefix of the prompt module of the default adapter ("prompt_encoder.default.").</summary>
    public const string PromptEncoderPrefix = "prompt_encoder." + AdapterName + ".";

    /// <summary>LoRA's down projection A [r, in] below a wrapped module.</summary>
    public const string LoraA = "lora_A";

    /// <summary>LoRA's up projection B [out, r] below a wrapped module.</summary>
    public const string LoraB = "lora_B";

    /// <summary>DoRA's per-output magnitude [out] below a wrapped module, saved without nn.Parameter's ".weight" leaf.</summary>
    public const string LoraMagnitude = "lora_magnitude_vector";

    /// <summary>The leaf of lora_B's bias (lora_bias = true).</summary>
    public const string LinearBias = "bias";

    /// <summary>The leaf of LoRA's A and B (they are bias-free nn.Linear modules).</summary>
    public const string LinearWeight = "weight";

    /// <summary>IA3's learned vector below a wrapped module: [out, 1], or [1, in] on feed-forward modules.</summary>
    public const string Ia3Vector = "ia3_l";

    /// <summary>Where a wrapped module's own tensors go in named_parameters() and in saved base tensors.</summary>
    public const string BaseLayer = "base_layer";

    /// <summary>ModulesToSaveWrapper's trainable copy (named_parameters: "{module}.modules_to_save.default.{leaf}").</summary>
    public const string ModulesToSave = "modules_to_save";

    /// <summary>ModulesToSaveWrapper's frozen original.</summary>
    public const string OriginalModule = "original_module";

    /// <summary>Saved name of an adapter tensor below a wrapped module: "base_model.model.{module}.{suffix}".</summary>
    public static string ModuleKey(string modulePath, string suffix) => $"{ModelPrefix}{modulePath}.{suffix}";

    /// <summary>Saved name of LoRA's A of a module ("base_model.model.{module}.lora_A.weight").</summary>
    public static string LoraAKey(string modulePath) => ModuleKey(modulePath, $"{LoraA}.{LinearWeight}");

    /// <summary>Saved name of LoRA's B of a module ("base_model.model.{module}.lora_B.weight").</summary>
    public static string LoraBKey(string modulePath) => ModuleKey(modulePath, $"{LoraB}.{LinearWeight}");

    /// <summary>Saved name of DoRA's magnitude of a module ("base_model.model.{module}.lora_magnitude_vector").</summary>
    public static string LoraMagnitudeKey(string modulePath) => ModuleKey(modulePath, LoraMagnitude);

    /// <summary>Saved name of lora_B's bias of a module ("base_model.model.{module}.lora_B.bias").</summary>
    public static string LoraBBiasKey(string modulePath) => ModuleKey(modulePath, $"{LoraB}.{LinearBias}");

    /// <summary>Saved name of IA3's vector of a module ("base_model.model.{module}.ia3_l").</summary>
    public static string Ia3Key(string modulePath) => ModuleKey(modulePath, Ia3Vector);

    /// <summary>
    /// Saved name of a base tensor (a modules_to_save copy or a trained bias) under its state-dict name; a wrapped
    /// module's own tensors sit under base_layer ("base_model.model.{module}.base_layer.bias").
    /// </summary>
    public static string BaseKey(string stateDictName, bool inWrappedModule = false) =>
        ModelPrefix + (inWrappedModule ? BaseLayerName(stateDictName) : stateDictName);

    /// <summary>"{module}.{leaf}" as "{module}.base_layer.{leaf}": the name of a wrapped module's own tensor.</summary>
    public static string BaseLayerName(string stateDictName)
    {
        var dot = stateDictName.LastIndexOf('.');
        return dot < 0 ? stateDictName : $"{stateDictName[..dot]}.{BaseLayer}.{stateDictName[(dot + 1)..]}";
    }

    /// <summary>named_parameters() name of an adapter attribute of a wrapped module ("...{module}.lora_A.default.weight").</summary>
    public static string NamedModuleParameter(string modulePath, string attribute, string? leaf) =>
        $"{ModelPrefix}{modulePath}.{attribute}.{AdapterName}" + (leaf is null ? "" : $".{leaf}");

    /// <summary>named_parameters() name of a modules_to_save copy's tensor ("...{module}.modules_to_save.default.{leaf}").</summary>
    public static string NamedSavedModuleParameter(string module, string leaf) => $"{ModelPrefix}{module}.{ModulesToSave}.{AdapterName}.{leaf}";

    /// <summary>
    /// Bias tensors PEFT writes inside a modules_to_save module with bias = "all" ("{module}.original_module.bias",
    /// "{module}.modules_to_save.bias") and never loads back: readers skip them.
    /// </summary>
    public static bool IsNeverLoaded(string key) =>
        key.Contains($".{OriginalModule}.", StringComparison.Ordinal) || key.Contains($".{ModulesToSave}.", StringComparison.Ordinal);

    /// <summary>adapter_model.safetensors of an adapter folder; one-line error when it is absent (naming the pickle when that is what is there).</summary>
    public static string WeightsPath(string adapterDir)
    {
        if (!Directory.Exists(adapterDir)) throw new PeftOnnxException($"{adapterDir}: adapter folder not found");
        var path = Path.Combine(adapterDir, WeightsFile);
        if (File.Exists(path)) return path;
        var pickle = Path.Combine(adapterDir, PickleFile);
        if (File.Exists(pickle))
            throw new PeftOnnxException($"{pickle}: pickle adapters are never loaded (they can run code); re-save it with safe_serialization=True to get {WeightsFile}");
        throw new PeftOnnxException($"{path}: file not found (expected PEFT adapter weights)");
    }

    /// <summary>Metadata PEFT (through safetensors.torch) writes into adapter_model.safetensors.</summary>
    public static IReadOnlyDictionary<string, string> WeightsMetadata { get; } = new Dictionary<string, string> { ["format"] = "pt" }.ToFrozenDictionary();
}
