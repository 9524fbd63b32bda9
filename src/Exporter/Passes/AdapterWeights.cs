using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// A PEFT adapter folder (<see cref="AdapterFormat"/>) opened for export. Opened for a base architecture, the whole
/// file is first checked against it (<see cref="AdapterFit"/>, the trainer's check too). Every tensor a pass takes is
/// checked again against the shape the base needs, so a mismatched adapter fails before any graph is written;
/// <see cref="RefuseUnused"/> then rejects tensors nothing took.
/// </summary>
public sealed class AdapterWeights : IDisposable
{
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    private AdapterWeights(string dir, AdapterConfig config, SafeTensorsFile file)
    {
        Dir = dir;
        Config = config;
        File = file;
    }

    public string Dir { get; }
    public AdapterConfig Config { get; }
    public SafeTensorsFile File { get; }

    /// <summary>Reads adapter_config.json and memory-maps adapter_model.safetensors.</summary>
    public static AdapterWeights Open(string dir)
    {
        if (!Directory.Exists(dir)) throw new PeftOnnxException($"{dir}: adapter folder not found");
        var config = AdapterConfig.Load(dir);
        return new AdapterWeights(dir, config, SafeTensorsFile.Open(AdapterFormat.WeightsPath(dir)));
    }

    /// <summary>Opens the adapter and checks all of it against <paramref name="architecture"/> before any tensor is read.</summary>
    public static AdapterWeights Open(string dir, Architecture architecture)
    {
        var adapter = Open(dir);
        try
        {
            AdapterFit.Check(adapter.Config, architecture, adapter.File, Path.Combine(dir, AdapterFormat.WeightsFile));
            return adapter;
        }
        catch
        {
            adapter.Dispose();
            throw;
        }
    }

    public bool Contains(string key) => File.Contains(key);

    /// <summary>
    /// Reads <paramref name="key"/> as float32 after checking it exists with <paramref name="shape"/>; the message of a
    /// mismatch names the tensor, both shapes and <paramref name="purpose"/> (what the base needs it for).
    /// </summary>
    public float[] Read(string key, long[] shape, string purpose)
    {
        if (!File.Contains(key))
            throw new PeftOnnxException($"{Dir}: adapter does not fit the base model: it has no tensor '{key}' (expected shape {Show(shape)} for {purpose})");
        var actual = File[key].Shape;
        if (!actual.SequenceEqual(shape))
            throw new PeftOnnxException($"{Dir}: adapter does not fit the base model: tensor '{key}' has shape {Show(actual)}, the base model needs {Show(shape)} for {purpose}");
        _used.Add(key);
        return File.ReadFloat32(key);
    }

    /// <summary>
    /// Refuses tensors no pass took (an adapter for another model, or a method this export does not apply), so
    /// nothing in the file is silently dropped. With bias = "all", PEFT also writes a modules_to_save module's biases
    /// as "{module}.original_module.bias" and "{module}.modules_to_save.bias" beside the copy's own key (it never loads
    /// them back): those are skipped.
    /// </summary>
    public void RefuseUnused()
    {
        var unused = File.Names.Where(n => !_used.Contains(n) && !AdapterFormat.IsNeverLoaded(n)).ToList();
        if (unused.Count > 0)
            throw new PeftOnnxException($"{Dir}: adapter does not fit the base model: tensor '{unused[0]}' (shape {Show(File[unused[0]].Shape)}) matches nothing the {Config.PeftType} adapter adapts in this base{(unused.Count > 1 ? $" ({unused.Count - 1} more)" : "")}");
    }

    /// <summary>
    /// Base tensors the adapter replaces whole: modules_to_save copies ("base_model.model.{name}") and, for LoRA's
    /// bias = "all"/"lora_only", trained biases ("base_model.model.{path}.base_layer.bias" on a wrapped module).
    /// Shapes are checked against the base.
    /// </summary>
    public Dictionary<string, float[]> Replacements(Architecture arch, IReadOnlyList<TargetMatch> targets)
    {
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var targetPaths = targets.Select(t => t.Path).ToHashSet(StringComparer.Ordinal);
        var saved = Config is InjectedAdapterConfig injected ? injected.FindModulesToSave(arch) : [];
        foreach (var p in arch.Parameters)
        {
            var inSaved = saved.FirstOrDefault(m => p.Name.StartsWith(m + ".", StringComparison.Ordinal));
            if (inSaved != null)
            {
                result[p.Name] = Read(AdapterFormat.BaseKey(p.Name), p.Shape, $"'{p.Name}' (modules_to_save copies '{inSaved}')");
                continue;
            }
            var dot = p.Name.LastIndexOf('.');
            var key = AdapterFormat.BaseKey(p.Name, inWrappedModule: dot > 0 && targetPaths.Contains(p.Name[..dot]));
            if (File.Contains(key)) result[p.Name] = Read(key, p.Shape, $"'{p.Name}' (trained with the adapter)");
        }
        return result;
    }

    public static string Show(long[] shape) => $"[{string.Join(", ", shape)}]";

    public void Dispose() => File.Dispose();
}

/// <summary>
/// A pass over the base weights: delegates to the wrapped source and changes the tensors it names (merged LoRA,
/// scaled IA3, replaced modules_to_save), range by range as the writer streams them. Untouched tensors stream
/// straight from the checkpoint.
/// </summary>
public abstract class WeightPass(WeightSource inner) : WeightSource
{
    protected WeightSource Inner { get; } = inner;

    public override bool Contains(string name) => Inner.Contains(name);

    public override long[] Shape(string name) => Inner.Shape(name);

    /// <summary>True when this pass changes <paramref name="name"/>.</summary>
    protected abstract bool Changes(string name);

    /// <summary>Elements [start, start + destination.Length) of a changed tensor (float32, in the checkpoint's layout).</summary>
    protected abstract void ReadChanged(string name, long start, Span<float> destination);

    public override void Read(string name, long start, Span<float> destination)
    {
        if (Changes(name)) ReadChanged(name, start, destination);
        else Inner.Read(name, start, destination);
    }

    public override bool TryGetSpan(string name, long start, int count, out ReadOnlySpan<float> values)
    {
        if (!Changes(name)) return Inner.TryGetSpan(name, start, count, out values);
        values = default;
        return false;
    }

    public override void Release(string name) => Inner.Release(name);

    public override StoredBytes? StoredFloat32(string name) => Changes(name) ? null : Inner.StoredFloat32(name);

    public override TransposedTerm? TransposedAddend(string name) => Changes(name) ? null : Inner.TransposedAddend(name);
}

/// <summary>Base tensors the adapter replaces whole (modules_to_save copies, trained biases); see <see cref="AdapterWeights.Replacements"/>.</summary>
public sealed class ReplaceSavedModules(WeightSource inner, IReadOnlyDictionary<string, float[]> replacements) : WeightPass(inner)
{
    public int Count => replacements.Count;

    protected override bool Changes(string name) => replacements.ContainsKey(name);

    protected override void ReadChanged(string name, long start, Span<float> destination) =>
        replacements[name].AsSpan(checked((int)start), destination.Length).CopyTo(destination);
}
