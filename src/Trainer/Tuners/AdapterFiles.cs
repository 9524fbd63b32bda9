using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>Saves and loads a tuner's adapter in PEFT's folder format (<see cref="AdapterFormat"/>).</summary>
public static class AdapterFiles
{
    /// <summary>Other files of a plain adapter folder (a README, say) up to this size are copied along when the folder is swapped.</summary>
    private const long MaxCopiedBytes = 64L << 20;

    /// <summary>
    /// Writes the adapter so that a reader (or a kill -9 of this process) never sees a half-written one. A new folder,
    /// or one that holds only files (an adapter and its README), is staged beside the target and swapped in whole
    /// (<see cref="AtomicFolder.Publish"/>): old, new, or for an instant none. A folder that holds more (a training
    /// run's --out with its checkpoints) gets the two files renamed in, adapter_config.json last: its presence marks a
    /// complete adapter, and an old config that does not describe the new weights is removed first.
    /// </summary>
    public static void Save(ITuner tuner, string dir)
    {
        var target = Path.GetFullPath(Path.TrimEndingDirectorySeparator(dir));
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        AtomicFolder.RemoveLeftovers(target);
        if (Directory.Exists(target)) AtomicFolder.RemoveLeftoversIn(target);
        var staged = AtomicFolder.StagingPath(target);
        Directory.CreateDirectory(staged);
        try
        {
            WriteFiles(tuner, staged);
            if (!Directory.Exists(target) || IsPlainFolder(target))
            {
                if (Directory.Exists(target))
                    foreach (var file in Directory.GetFiles(target))
                    {
                        var copy = Path.Combine(staged, Path.GetFileName(file));
                        if (!File.Exists(copy)) File.Copy(file, copy);
                    }
                AtomicFolder.Publish(staged, target);
                return;
            }
            var config = Path.Combine(target, AdapterFormat.ConfigFile);
            var newConfig = Path.Combine(staged, AdapterFormat.ConfigFile);
            if (File.Exists(config) && !File.ReadAllBytes(config).AsSpan().SequenceEqual(File.ReadAllBytes(newConfig))) File.Delete(config);
            File.Move(Path.Combine(staged, AdapterFormat.WeightsFile), Path.Combine(target, AdapterFormat.WeightsFile), overwrite: true);
            File.Move(newConfig, config, overwrite: true);
            Directory.Delete(staged, recursive: true);
        }
        catch
        {
            try { if (Directory.Exists(staged)) Directory.Delete(staged, recursive: true); } catch (IOException) { }
            throw;
        }
    }

    private static bool IsPlainFolder(string dir) =>
        !Directory.EnumerateDirectories(dir).Any()
        && Directory.EnumerateFiles(dir).Sum(f => new FileInfo(f).Length) <= MaxCopiedBytes;

    private static void WriteFiles(ITuner tuner, string dir)
    {
        var state = tuner.AdapterStateDict();
        try
        {
            var tensors = state.Select(kv => TensorData.FromFloat32(kv.Key, kv.Value.shape, kv.Value.to(float32).cpu().contiguous().data<float>().ToArray()));
            SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), tensors, AdapterFormat.WeightsMetadata);
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
        (tuner.Config with { InferenceMode = true }).Save(dir);
    }

    /// <summary>
    /// Reads the folder's adapter_model.safetensors into the attached tuner, after checking the whole file against
    /// the base (<see cref="AdapterFit"/>, the exporter's check too).
    /// </summary>
    public static void LoadInto(ITuner tuner, Architecture architecture, string dir)
    {
        var path = AdapterFormat.WeightsPath(dir);
        using var file = SafeTensorsFile.Open(path);
        AdapterFit.Check(tuner.Config, architecture, file, path);
        var state = new Dictionary<string, Tensor>();
        try
        {
            foreach (var name in file.Names) state[name] = ParameterStore.ReadTensor(file, name);
            tuner.LoadAdapterStateDict(state, path);
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }
}
