using System.Globalization;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>
/// `train --data`: fine-tunes a new adapter on a labelled CSV/JSONL file as the PEFT task guides do, evaluating
/// on a validation split each epoch. Writes the adapter, checkpoints, metrics.jsonl and loss.png to the out folder;
/// what it does goes to the log, the epochs' progress to the sink the progress host gives.
/// </summary>
public static class FinetuneJob
{
    public const string PlotFile = "loss.png";

    public static FinetuneReport Run(FinetuneRequest r, FinetuneProgressHost showProgress, TextWriter log)
    {
        if (r.OptimizerName != "adamw") throw new PeftOnnxException($"train: --data trains with adamw (as the PEFT guides); --optimizer '{r.OptimizerName}' is for --batch runs");
        if (r.Method is null == r.ConfigPath is null)
            throw new PeftOnnxException($"train: give exactly one of --method ({string.Join("|", FinetuneSetup.Methods)}) or --config adapter_config.json");
        if (r.Method is not null && !FinetuneSetup.Methods.Contains(r.Method))
            throw new PeftOnnxException($"train: --method '{r.Method}' is not one of {string.Join(", ", FinetuneSetup.Methods)}");
        if (r.ConfigPath is not null && !File.Exists(r.ConfigPath)) throw new PeftOnnxException($"train: --config {r.ConfigPath}: file not found");
        if (r.ValidationPath is null == r.ValidationSplit is null)
            throw new PeftOnnxException("train: give exactly one of --validation F (a file with the same columns) or --validation-split X (e.g. 0.1 of --data, shuffled with --seed)");
        if (r.ValidationPath is not null && !File.Exists(r.ValidationPath)) throw new PeftOnnxException($"train: --validation {r.ValidationPath}: file not found");
        var options = r.Options;
        try { options.Validate(); }
        catch (PeftOnnxException ex) { throw new PeftOnnxException($"train: {ex.Message}"); }
        var template = r.Template is null ? null : PromptTemplate.Parse(r.Template);

        // Data and tokenizer first: bad input fails in a second, before any weights are read.
        var modelConfig = ModelConfig.Load(r.BaseDir);
        var task = modelConfig.IsEncoderDecoder ? TaskKind.Seq2SeqLm : TaskKind.CausalLm;
        template ??= task == TaskKind.CausalLm ? PromptTemplate.Parse(ExampleBuilder.DefaultCausalTemplate) : null;
        var table = DataTable.Read(r.DataPath);
        table.ColumnIndex(r.TextColumn);
        table.ColumnIndex(r.LabelColumn);
        var (train, validation) = r.ValidationPath is not null
            ? (table, DataTable.Read(r.ValidationPath))
            : FinetuneSetup.Split(table, r.ValidationSplit!.Value, options.Seed);
        var tokenizer = HfTokenizer.FromFolder(r.BaseDir);
        var eos = tokenizer.EosTokenId ?? modelConfig.EosTokenId?.FirstOrDefault()
            ?? throw new PeftOnnxException($"{r.BaseDir}: the tokenizer and config.json name no eos token (targets end with it)");
        var ids = new SpecialIds(eos, tokenizer.PadTokenId ?? modelConfig.PadTokenId ?? eos);
        var builder = new ExampleBuilder(tokenizer, task, ids, template, r.MaxLength, r.TargetMaxLength);
        var data = FinetuneSetup.Prepare(train, validation, r.TextColumn, r.LabelColumn, builder);
        var unknown = FinetuneSetup.UnknownLabels(data);
        if (unknown.Count > 0)
            log.WriteLine($"warning: {data.UnknownValidationLabels} validation row(s) have a label not seen in training: {string.Join(", ", unknown.Take(10).Select(l => $"'{l}'"))}{(unknown.Count > 10 ? $" (and {unknown.Count - 10} more)" : "")}; they count as misses");

        TorchDevice.Resolve(r.Device, log.WriteLine);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        AdapterConfig adapterConfig = r.ConfigPath is not null
            ? AdapterConfig.Load(r.ConfigPath) with { InferenceMode = false }
            : FinetuneSetup.ConfigFor(r.Method!, r.MethodOptions, task, r.BaseDir, tokenizer, modelConfig.Dimensions);
        if (r.ConfigPath is not null && HasMethodOptions(r.MethodOptions))
            throw new PeftOnnxException("train: --r, --lora-alpha, --target-modules, --num-virtual-tokens ... build a config for --method; with --config the file says it all");
        if (modelConfig.PositionTable is { } positions)
        {
            // Training reads whole examples; evaluation generates the label after each validation prompt.
            long longest = data.Train.Concat(data.Validation).Select(e => (long)e.InputIds.Length)
                .Concat(data.Validation.Select(e => (long)e.PromptIds.Length + data.MaxNewTokens)).DefaultIfEmpty(0).Max();
            positions.Check(longest, adapterConfig.VirtualTokensBeforeInput, $"train --data {r.DataPath}: the longest example (prompt + label; --max-length cuts examples)");
        }
        var baseModel = ModelLoader.Load(r.BaseDir, out var report);
        PeftModel model;
        try
        {
            PeftModelSource.CheckTask(adapterConfig, baseModel);
            model = PeftModel.Create(baseModel, adapterConfig, options.Seed);
        }
        catch { baseModel.Dispose(); throw; }
        using var owned = model;
        Warnings.Unexpected(report, log);

        var trainable = model.Tuner.TrainableParameters.Sum(p => p.Parameter.numel());
        var settings = Settings(r.BaseDir, r.DataPath, r.ValidationPath, r.ValidationSplit, r.TextColumn, r.LabelColumn, template, model.Config, options, r.MaxLength, r.TargetMaxLength);
        var run = new FinetuneRun(model, tokenizer, data, options, r.OutDir, settings);
        log.WriteLine($"{model.Config.PeftType} on {model.Base.Architecture.ClassName}: {trainable:N0} trainable parameters; " +
            $"{data.Train.Count} training rows, {data.Validation.Count} validation rows, labels {string.Join("/", data.LabelSet)}; " +
            $"{options.Epochs} epoch(s) x {options.BatchesPerEpoch(data.Train.Count)} batches of {options.BatchSize}, {run.TotalSteps} optimizer steps, lr {options.Lr.ToString(CultureInfo.InvariantCulture)}");

        var result = showProgress(progress => run.Run(r.Resume, progress));
        try { LossPlot.Write(Path.Combine(r.OutDir, PlotFile), result.Epochs, $"{model.Config.PeftType} on {Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(r.BaseDir)))}"); }
        catch (Exception ex) when (ex is not PeftOnnxException) { log.WriteLine($"warning: could not draw {PlotFile}: {ex.Message.Split('\n')[0]}"); }

        var last = result.Epochs.LastOrDefault();
        if (last is not null)
            log.WriteLine(result.Completed
                ? $"final accuracy {last.EvalAccuracy.ToString("F4", CultureInfo.InvariantCulture)} ({last.EvalCorrect}/{last.EvalRows}), train loss {last.TrainLoss.ToString("F4", CultureInfo.InvariantCulture)}; adapter in {r.OutDir} ({clock.Elapsed.TotalSeconds:F1} s)"
                : $"stopped after epoch {last.Epoch} of {options.Epochs}: accuracy {last.EvalAccuracy.ToString("F4", CultureInfo.InvariantCulture)}; continue with --resume");
        return new FinetuneReport(result, model.Config.PeftType, trainable, data.Train.Count, data.Validation.Count, data.LabelSet, clock.Elapsed.TotalSeconds);
    }

    private static bool HasMethodOptions(MethodOptions o) =>
        o.R is not null || o.LoraAlpha is not null || o.LoraDropout is not null || o.TargetModules is not null
        || o.NumVirtualTokens is not null || o.PromptInitText is not null || o.EncoderHiddenSize is not null || o.PrefixProjection
        || o.UseDora || o.LoraBias || o.ExcludeModules is not null;

    /// <summary>What must not change between a run and its --resume (epochs included: the schedule depends on it).</summary>
    private static Dictionary<string, string> Settings(string baseDir, string data, string? validation, double? split, string text, string label,
        PromptTemplate? template, AdapterConfig config, FinetuneOptions o, int? maxLength, int? targetMaxLength)
    {
        string F(double? v) => v?.ToString("R", CultureInfo.InvariantCulture) ?? "";
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["base"] = Path.GetFullPath(baseDir),
            ["data"] = Path.GetFullPath(data),
            ["validation"] = validation is null ? "" : Path.GetFullPath(validation),
            ["validation_split"] = F(split),
            ["text_column"] = text,
            ["label_column"] = label,
            ["template"] = template?.Template ?? "",
            ["adapter_config"] = (config with { SourcePath = AdapterConfig.FileName }).ToJson(),
            ["lr"] = F(o.Lr),
            ["epochs"] = o.Epochs.ToString(CultureInfo.InvariantCulture),
            ["batch_size"] = o.BatchSize.ToString(CultureInfo.InvariantCulture),
            ["grad_accum"] = o.GradientAccumulation.ToString(CultureInfo.InvariantCulture),
            ["max_grad_norm"] = F(o.MaxGradNorm),
            ["warmup_steps"] = o.WarmupSteps.ToString(CultureInfo.InvariantCulture),
            ["weight_decay"] = F(o.WeightDecay),
            ["seed"] = o.Seed.ToString(CultureInfo.InvariantCulture),
            ["max_length"] = maxLength?.ToString(CultureInfo.InvariantCulture) ?? "",
            ["target_max_length"] = targetMaxLength?.ToString(CultureInfo.InvariantCulture) ?? "",
        };
    }
}
