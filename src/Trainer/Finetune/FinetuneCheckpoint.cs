using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>The scalar part of a checkpoint (state.json): where the run stands and what it measured so far.</summary>
public sealed record CheckpointState
{
    [JsonPropertyName("epoch")] public int Epoch { get; init; }
    [JsonPropertyName("optimizer_steps")] public long OptimizerSteps { get; init; }
    [JsonPropertyName("scheduler_step")] public long SchedulerStep { get; init; }
    /// <summary>The shuffle generator's state after this epoch's permutation (decimal text: JSON numbers lose bits).</summary>
    [JsonPropertyName("shuffle_rng_state")] public string ShuffleRngState { get; init; } = "0";
    [JsonPropertyName("settings")] public Dictionary<string, string> Settings { get; init; } = [];
    [JsonPropertyName("metrics")] public List<EpochMetrics> Metrics { get; init; } = [];
}

/// <summary>
/// One epoch's checkpoint in OUT/checkpoints/epoch-NNNN: the adapter in PEFT's format, the prompt encoder's own
/// weights for prompt methods (trainable_state.safetensors), the AdamW state (optimizer.safetensors), torch's
/// generator state (torch_rng_state.bin) and state.json. Written into a hidden staging folder that is renamed into
/// place (<see cref="AtomicFolder"/>), so a folder named epoch-NNNN is always complete, even after a kill -9.
/// </summary>
public static class FinetuneCheckpoint
{
    public const string Folder = "checkpoints";
    public const string StateFile = "state.json";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string TrainableFile = "trainable_state.safetensors";
    public const string TorchRngFile = "torch_rng_state.bin";

    private static readonly JsonSerializerOptions Json = new(EpochMetrics.Json) { WriteIndented = true };

    public static string EpochDir(string outDir, int epoch) => Path.Combine(outDir, Folder, $"epoch-{epoch:D4}");

    public static void Save(string outDir, PeftModel model, Optimizer optimizer, CheckpointState state)
    {
        var root = Path.Combine(outDir, Folder);
        Directory.CreateDirectory(root);
        var final = EpochDir(outDir, state.Epoch);
        var temp = AtomicFolder.StagingPath(final);
        try
        {
            model.Save(temp);
            if (model.Tuner is PromptLearningTuner prompt) prompt.SaveTrainableState(Path.Combine(temp, TrainableFile));
            var optimizerState = optimizer.StateDict();
            try
            {
                SafeTensorsWriter.Write(Path.Combine(temp, OptimizerFile), optimizerState.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                    .Select(kv => TensorData.FromFloat32(kv.Key, kv.Value.shape, kv.Value.to(float32).contiguous().data<float>().ToArray())));
            }
            finally { foreach (var t in optimizerState.Values) t.Dispose(); }
            using (var rng = random.get_rng_state())
                File.WriteAllBytes(Path.Combine(temp, TorchRngFile), rng.contiguous().data<byte>().ToArray());
            File.WriteAllText(Path.Combine(temp, StateFile), JsonSerializer.Serialize(state, Json));
            AtomicFolder.Publish(temp, final);
        }
        catch
        {
            try { if (Directory.Exists(temp)) Directory.Delete(temp, true); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>The newest complete checkpoint folder (epoch-NNNN with a state.json), or null.</summary>
    public static string? Latest(string outDir)
    {
        var root = Path.Combine(outDir, Folder);
        if (!Directory.Exists(root)) return null;
        return Directory.GetDirectories(root, "epoch-*")
            .Select(d => (Dir: d, Epoch: int.TryParse(Path.GetFileName(d)["epoch-".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var e) ? e : -1))
            .Where(x => x.Epoch > 0 && File.Exists(Path.Combine(x.Dir, StateFile)))
            .OrderByDescending(x => x.Epoch)
            .Select(x => x.Dir)
            .FirstOrDefault();
    }

    public static CheckpointState ReadState(string dir)
    {
        var path = Path.Combine(dir, StateFile);
        try
        {
            return JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(path), Json)
                ?? throw new PeftOnnxException($"{path}: empty checkpoint state");
        }
        catch (JsonException ex) { throw new PeftOnnxException($"{path}: not a valid checkpoint state ({ex.Message.Split('\n')[0]})"); }
    }

    /// <summary>Puts the adapter, the optimizer state and torch's generator back as they were when the checkpoint was written.</summary>
    public static void Restore(string dir, PeftModel model, Optimizer optimizer)
    {
        if (model.Tuner is PromptLearningTuner prompt) prompt.LoadTrainableState(Path.Combine(dir, TrainableFile));
        else model.LoadAdapter(dir);

        var optimizerPath = Path.Combine(dir, OptimizerFile);
        if (!File.Exists(optimizerPath)) throw new PeftOnnxException($"{optimizerPath}: file not found (incomplete checkpoint)");
        using (var file = SafeTensorsFile.Open(optimizerPath))
        {
            var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            try
            {
                foreach (var name in file.Names) state[name] = ParameterStore.ReadTensor(file, name);
                optimizer.LoadStateDict(state);
            }
            finally { foreach (var t in state.Values) t.Dispose(); }
        }

        var rngPath = Path.Combine(dir, TorchRngFile);
        if (File.Exists(rngPath))
        {
            var bytes = File.ReadAllBytes(rngPath);
            using var rng = tensor(bytes, [bytes.LongLength], dtype: uint8);
            random.set_rng_state(rng);
        }
    }
}
