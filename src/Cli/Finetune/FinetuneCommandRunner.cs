using System.Globalization;
using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer;
using Peft.Onnx.Trainer.Finetune;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;

namespace Peft.Onnx.Cli.Finetune;

/// <summary>
/// `train --data`: fine-tunes a new adapter on a labelled CSV/JSONL file as the PEFT task guides do, evaluating
/// on a validation split each epoch. Writes the adapter, checkpoints, metrics.jsonl and loss.png to --out.
/// </summary>
public static class FinetuneCommandRunner
{
    public const string DefaultTemplate = "{text} Label : ";
    public const string PlotFile = "loss.png";

    public static int Run(ArgReader args)
    {
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder");
        var dataPath = args.ExistingFile("data", "a .jsonl or .csv file with a text and a label column");
        var validationPath = args.String("validation");
        var validationSplit = args.Double("validation-split");
        var seed = args.Int("seed", min: 0) ?? 42;
        var textColumn = args.Required("text-column", "the column holding the input text");
        var labelColumn = args.Required("label-column", "the column holding the label text");
        var templateText = args.String("template");
        var method = args.String("method");
        var configPath = args.String("config");
        var methodOptions = new MethodOptions
        {
            R = args.Int("r", min: 1),
            LoraAlpha = args.Double("lora-alpha"),
            LoraDropout = args.Double("lora-dropout"),
            TargetModules = args.String("target-modules")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            NumVirtualTokens = args.Int("num-virtual-tokens", min: 1),
            PromptInitText = args.String("prompt-init-text"),
            EncoderHiddenSize = args.Int("encoder-hidden-size", min: 1),
            PrefixProjection = args.Flag("prefix-projection"),
        };
        var optimizerName = args.String("optimizer") ?? "adamw";
        var options = new FinetuneOptions
        {
            Lr = args.Double("lr") ?? throw new PeftOnnxException("train: missing --lr (learning rate)"),
            Epochs = args.Int("epochs", min: 1) ?? throw new PeftOnnxException("train: missing --epochs (passes over the training data, >= 1)"),
            BatchSize = args.Int("batch-size", min: 1) ?? 8,
            GradientAccumulation = args.Int("grad-accum", min: 1) ?? 1,
            MaxGradNorm = args.Double("max-grad-norm"),
            WarmupSteps = args.Int("warmup-steps", min: 0) ?? 0,
            WeightDecay = args.Double("weight-decay") ?? 0.01,
            Seed = seed,
            StopAfterEpoch = args.Int("stop-after-epoch", min: 1),
        };
        var maxLength = args.Int("max-length", min: 1);
        var targetMaxLength = args.Int("target-max-length", min: 1);
        var outDir = args.Required("out", "the folder for the adapter, checkpoints, metrics.jsonl and loss.png");
        var resume = args.Flag("resume");
        var json = args.Flag("json");
        var device = args.Choice("device", "auto", "cpu", "cuda", "auto");
        args.EnsureAllUsed();

        if (optimizerName != "adamw") throw new PeftOnnxException($"train: --data trains with adamw (as the PEFT guides); --optimizer '{optimizerName}' is for --batch runs");
        if (method is null == configPath is null)
            throw new PeftOnnxException($"train: give exactly one of --method ({string.Join("|", FinetuneSetup.Methods)}) or --config adapter_config.json");
        if (method is not null && !FinetuneSetup.Methods.Contains(method))
            throw new PeftOnnxException($"train: --method '{method}' is not one of {string.Join(", ", FinetuneSetup.Methods)}");
        if (configPath is not null && !File.Exists(configPath)) throw new PeftOnnxException($"train: --config {configPath}: file not found");
        if (validationPath is null == validationSplit is null)
            throw new PeftOnnxException("train: give exactly one of --validation F (a file with the same columns) or --validation-split X (e.g. 0.1 of --data, shuffled with --seed)");
        if (validationPath is not null && !File.Exists(validationPath)) throw new PeftOnnxException($"train: --validation {validationPath}: file not found");
        try { options.Validate(); }
        catch (PeftOnnxException ex) { throw new PeftOnnxException($"train: {ex.Message}"); }
        var template = templateText is null ? null : PromptTemplate.Parse(templateText);

        // Data and tokenizer first: bad input fails in a second, before any weights are read.
        var modelConfig = ModelConfig.Load(baseDir);
        var task = modelConfig.IsEncoderDecoder ? TaskKind.Seq2SeqLm : TaskKind.CausalLm;
        template ??= task == TaskKind.CausalLm ? PromptTemplate.Parse(DefaultTemplate) : null;
        var table = DataTable.Read(dataPath);
        table.ColumnIndex(textColumn);
        table.ColumnIndex(labelColumn);
        var (train, validation) = validationPath is not null
            ? (table, DataTable.Read(validationPath))
            : FinetuneSetup.Split(table, validationSplit!.Value, seed);
        var tokenizer = HfTokenizer.FromFolder(baseDir);
        var eos = tokenizer.EosTokenId ?? modelConfig.EosTokenId?.FirstOrDefault()
            ?? throw new PeftOnnxException($"{baseDir}: the tokenizer and config.json name no eos token (targets end with it)");
        var ids = new SpecialIds(eos, tokenizer.PadTokenId ?? modelConfig.PadTokenId ?? eos);
        var builder = new ExampleBuilder(tokenizer, task, ids, template, maxLength, targetMaxLength);
        var data = FinetuneSetup.Prepare(train, validation, textColumn, labelColumn, builder);
        var unknown = FinetuneSetup.UnknownLabels(data);
        if (unknown.Count > 0)
            Console.Error.WriteLine($"warning: {data.UnknownValidationLabels} validation row(s) have a label not seen in training: {string.Join(", ", unknown.Take(10).Select(l => $"'{l}'"))}{(unknown.Count > 10 ? $" (and {unknown.Count - 10} more)" : "")}; they count as misses");

        TorchDevice.Resolve(device, Console.Error.WriteLine);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        AdapterConfig adapterConfig = configPath is not null
            ? AdapterConfig.Load(configPath) with { InferenceMode = false }
            : FinetuneSetup.ConfigFor(method!, methodOptions, task, baseDir, tokenizer, modelConfig.Dimensions);
        if (configPath is not null && HasMethodOptions(methodOptions))
            throw new PeftOnnxException("train: --r, --lora-alpha, --target-modules, --num-virtual-tokens ... build a config for --method; with --config the file says it all");
        if (modelConfig.PositionTable is { } positions)
        {
            // Training reads whole examples; evaluation generates the label after each validation prompt.
            long longest = data.Train.Concat(data.Validation).Select(e => (long)e.InputIds.Length)
                .Concat(data.Validation.Select(e => (long)e.PromptIds.Length + data.MaxNewTokens)).DefaultIfEmpty(0).Max();
            positions.Check(longest, adapterConfig.VirtualTokensBeforeInput, $"train --data {dataPath}: the longest example (prompt + label; --max-length cuts examples)");
        }
        var baseModel = Trainer.Modeling.ModelLoader.Load(baseDir, out var report);
        PeftModel model;
        try
        {
            PeftModelSource.CheckTask(adapterConfig, baseModel);
            model = PeftModel.Create(baseModel, adapterConfig, seed);
        }
        catch { baseModel.Dispose(); throw; }
        using var owned = model;
        Warnings.Unexpected(report);

        var trainable = model.Tuner.TrainableParameters.Sum(p => p.Parameter.numel());
        var settings = Settings(baseDir, dataPath, validationPath, validationSplit, textColumn, labelColumn, template, model.Config, options, maxLength, targetMaxLength);
        var run = new FinetuneRun(model, tokenizer, data, options, outDir, settings);
        Console.Error.WriteLine($"{model.Config.PeftType} on {model.Base.Architecture.ClassName}: {trainable:N0} trainable parameters; " +
            $"{data.Train.Count} training rows, {data.Validation.Count} validation rows, labels {string.Join("/", data.LabelSet)}; " +
            $"{options.Epochs} epoch(s) x {options.BatchesPerEpoch(data.Train.Count)} batches of {options.BatchSize}, {run.TotalSteps} optimizer steps, lr {options.Lr.ToString(CultureInfo.InvariantCulture)}");

        var result = ConsoleProgress.Run(progress => run.Run(resume, progress));
        try { LossPlot.Write(Path.Combine(outDir, PlotFile), result.Epochs, $"{model.Config.PeftType} on {Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(baseDir)))}"); }
        catch (Exception ex) when (ex is not PeftOnnxException) { Console.Error.WriteLine($"warning: could not draw {PlotFile}: {ex.Message.Split('\n')[0]}"); }

        var last = result.Epochs.LastOrDefault();
        if (last is not null)
            Console.Error.WriteLine(result.Completed
                ? $"final accuracy {last.EvalAccuracy.ToString("F4", CultureInfo.InvariantCulture)} ({last.EvalCorrect}/{last.EvalRows}), train loss {last.TrainLoss.ToString("F4", CultureInfo.InvariantCulture)}; adapter in {outDir} ({clock.Elapsed.TotalSeconds:F1} s)"
                : $"stopped after epoch {last.Epoch} of {options.Epochs}: accuracy {last.EvalAccuracy.ToString("F4", CultureInfo.InvariantCulture)}; continue with --resume");
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["epochs"] = result.Epochs,
                ["final_accuracy"] = last?.EvalAccuracy,
                ["completed"] = result.Completed,
                ["resumed_from_epoch"] = result.ResumedFromEpoch,
                ["peft_type"] = model.Config.PeftType,
                ["trainable"] = trainable,
                ["train_rows"] = data.Train.Count,
                ["validation_rows"] = data.Validation.Count,
                ["labels"] = data.LabelSet,
                ["out"] = outDir,
                ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 3),
            }, EpochMetrics.Json));
        }
        return 0;
    }

    private static bool HasMethodOptions(MethodOptions o) =>
        o.R is not null || o.LoraAlpha is not null || o.LoraDropout is not null || o.TargetModules is not null
        || o.NumVirtualTokens is not null || o.PromptInitText is not null || o.EncoderHiddenSize is not null || o.PrefixProjection;

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
