using System.Diagnostics;
using System.Globalization;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Training;

/// <summary>
/// `train --batch`: N optimizer steps of an adapter on one fixed batch (constant lr), then the adapter is saved in
/// PEFT's format. Bad requests and batches fail before any weights are read; each step's loss goes to the log.
/// </summary>
public static class OneBatchJob
{
    public static OneBatchReport Run(OneBatchRequest r, TextWriter log)
    {
        var settings = r.Optimizer;
        if (r.AdapterDir is null == r.ConfigPath is null)
            throw new PeftOnnxException("train: give exactly one of --adapter DIR (continue a saved adapter) or --config adapter_config.json (a new adapter)");
        if (r.ConfigPath is not null && !File.Exists(r.ConfigPath) && !Directory.Exists(r.ConfigPath))
            throw new PeftOnnxException($"train: --config {r.ConfigPath}: file not found");
        if (File.Exists(r.OutDir)) throw new PeftOnnxException($"train: --out {r.OutDir} is a file (expected the folder to write the adapter to)");
        if (settings.Lr <= 0) throw new PeftOnnxException($"train: --lr {settings.Lr.ToString(CultureInfo.InvariantCulture)} must be > 0");
        try { settings.Validate(); }
        catch (PeftOnnxException ex) { throw new PeftOnnxException($"train: {ex.Message}"); }

        var batch = ForwardBatch.Read(r.BatchPath);
        if (batch.Labels is null) throw new PeftOnnxException($"{r.BatchPath}: missing tensor 'labels' (training needs targets; -100 marks ignored positions)");
        ModelConfig.Load(r.BaseDir).PositionTable?.Check(batch.Shape[1], AdapterConfig.Load(r.AdapterDir ?? r.ConfigPath!).VirtualTokensBeforeInput, r.BatchPath);
        TorchDevice.Resolve(r.Device, log.WriteLine);

        var clock = Stopwatch.StartNew();
        using var model = r.AdapterDir is not null
            ? PeftModelSource.FromAdapter(r.BaseDir, r.AdapterDir, out var report)
            : PeftModelSource.FromConfig(r.BaseDir, r.ConfigPath!, r.Seed ?? 0, out report);
        if (r.AdapterDir is not null && r.Seed is { } seed) TorchSharp.torch.random.manual_seed(seed);
        Warnings.Unexpected(report, log);
        batch.CheckVocabulary(model.Base.Architecture.Config.Dimensions.VocabSize, r.BatchPath);
        batch.CheckLabels(model.Base, r.BatchPath);

        var trainable = model.Tuner.TrainableParameters;
        var count = trainable.Sum(p => p.Parameter.numel());
        log.WriteLine($"{model.Config.PeftType} on {model.Base.Architecture.ClassName}: {count:N0} trainable parameters in {trainable.Count} tensors; {r.Steps} {settings.Name} steps at lr {settings.Lr.ToString(CultureInfo.InvariantCulture)}");
        OneBatchResult result;
        using (var optimizer = settings.Create(trainable))
            result = OneBatchSteps.Run(model, batch, optimizer, r.Steps, (step, loss) => log.WriteLine($"step {step}/{r.Steps}: loss {loss.ToString("G9", CultureInfo.InvariantCulture)}"));
        var final = ForwardPass.Run(model, batch).Loss;

        model.Save(r.OutDir);
        log.WriteLine($"wrote the adapter to {r.OutDir} (loss {result.Losses[0].ToString("G6", CultureInfo.InvariantCulture)} -> {final?.ToString("G6", CultureInfo.InvariantCulture)}, {clock.Elapsed.TotalSeconds:F1} s)");
        return new OneBatchReport(result.Losses, final, model.Config.PeftType, count, clock.Elapsed.TotalSeconds);
    }
}
