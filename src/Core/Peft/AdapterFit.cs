using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// The one check of a saved adapter against a base model, run by the trainer before it allocates anything and by
/// the exporter before it reads any weight, so both accept and refuse the same adapters with the same messages:
/// the config attaches to the base (placement, sizes, prompt layout), every tensor in the file has the name and
/// shape that config implies on this base, nothing is missing or left over, and the modules the config makes the
/// trainer build stay within <see cref="MaxModuleParameters"/>. Only the file's header is read.
/// </summary>
public static class AdapterFit
{
    /// <summary>
    /// Parameters a prompt encoder (p-tuning's MLP/LSTM, a prefix projection) may have: 2^31 float32 values are
    /// 8 GiB, far beyond any adapter PEFT trains, and an encoder_hidden_size past it is a broken file, not a model.
    /// </summary>
    public const long MaxModuleParameters = 1L << 31;

    /// <summary>Checks the adapter folder (adapter_model.safetensors) against <paramref name="arch"/>; returns the config as attached.</summary>
    public static AdapterConfig Check(AdapterConfig config, Architecture arch, string adapterDir)
    {
        var path = AdapterFormat.WeightsPath(adapterDir);
        using var file = SafeTensorsFile.Open(path);
        return Check(config, arch, file, path);
    }

    /// <summary>Checks an open adapter file (<paramref name="path"/> names it in messages); returns the config as attached.</summary>
    public static AdapterConfig Check(AdapterConfig config, Architecture arch, ITensorSource file, string path)
    {
        var prepared = config.PreparedFor(arch);
        if (prepared is PromptLearningConfig prompt) PromptFit.Check(prompt, arch);
        var layout = AdapterLayout.For(prepared, arch);
        CheckTensors(layout, prepared, arch, file, path);
        CheckModuleSize(prepared, arch);
        return prepared;
    }

    private static void CheckTensors(AdapterLayout layout, AdapterConfig config, Architecture arch, ITensorSource file, string path)
    {
        foreach (var t in layout.Required.Concat(layout.Optional))
        {
            if (!file.Contains(t.Key)) continue;
            var actual = file[t.Key].Shape;
            if (!actual.SequenceEqual(t.Shape))
                throw new PeftOnnxException($"{path}: tensor '{t.Key}' has shape {ExpectedTensor.Show(actual)} but {t.NeededBy} {ExpectedTensor.Show(t.Shape)} ({t.Detail})");
        }
        var known = layout.Required.Concat(layout.Optional).Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        var missing = layout.Required.Where(t => !file.Contains(t.Key)).ToList();
        var unexpected = file.Names.Where(n => !known.Contains(n) && !AdapterFormat.IsNeverLoaded(n)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count == 0 && unexpected.Count == 0) return;
        var parts = new List<string>();
        if (missing.Count > 0) parts.Add($"missing {List(missing.Select(t => $"'{t.Key}' {ExpectedTensor.Show(t.Shape)}").ToList())}");
        if (unexpected.Count > 0) parts.Add($"unexpected {List(unexpected.Select(n => $"'{n}' {ExpectedTensor.Show(file[n].Shape)}").ToList())}{LoraKeyHint(config, unexpected)}");
        throw new PeftOnnxException($"{path}: the {config.PeftType} adapter does not fit {arch.ClassName} with this adapter_config.json: {string.Join("; ", parts)}");
    }

    /// <summary>Tensors that only a LoRA key set to true explains: name the key, which is what is wrong in such a folder.</summary>
    private static string LoraKeyHint(AdapterConfig config, IReadOnlyList<string> unexpected)
    {
        if (config is not LoraConfig lora) return "";
        if (!lora.UsesDora && unexpected.Any(n => n.EndsWith("." + AdapterFormat.LoraMagnitude, StringComparison.Ordinal)))
            return $" (DoRA magnitudes, but adapter_config.json has {LoraNewerKeys.UseDora} = false)";
        if (!lora.HasLoraBias && unexpected.Any(n => n.EndsWith($".{AdapterFormat.LoraB}.{AdapterFormat.LinearBias}", StringComparison.Ordinal)))
            return $" (lora_B biases, but adapter_config.json has {LoraNewerKeys.LoraBias} = false)";
        return "";
    }

    private static string List(IReadOnlyList<string> items) =>
        string.Join(", ", items.Take(6)) + (items.Count > 6 ? $" (and {items.Count - 6} more)" : "");

    /// <summary>
    /// A prompt encoder the file does not hold (p-tuning's, a prefix projection's) is still built when the trainer
    /// attaches the adapter; its size comes from encoder_hidden_size alone, which no tensor confirms. Also run for a
    /// fresh config before the trainer builds its modules.
    /// </summary>
    public static void CheckModuleSize(AdapterConfig config, Architecture arch)
    {
        int? hidden = config switch
        {
            PrefixTuningConfig { PrefixProjection: true } c => c.EncoderHiddenSize,
            PromptEncoderConfig c => c.EncoderHiddenSize,
            _ => null,
        };
        if (hidden is null) return;
        long parameters = config.CountParameters(arch).Trainable;
        if (parameters > MaxModuleParameters)
            throw new PeftOnnxException($"{config.SourcePath}: encoder_hidden_size = {hidden} is invalid (expected a size whose prompt encoder has at most {MaxModuleParameters} parameters; this one would have {parameters})");
    }
}
