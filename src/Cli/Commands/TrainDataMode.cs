using System.Text.Json;
using Peft.Onnx.Cli.Finetune;
using Peft.Onnx.Core;
using Peft.Onnx.Trainer.Finetune;

namespace Peft.Onnx.Cli.Commands;

/// <summary>`train --data`: the options of a fine-tune job, handed to <see cref="FinetuneJob"/> with console progress.</summary>
public static class TrainDataMode
{
    public static int Run(ArgReader args)
    {
        var seed = args.Int("seed", min: 0) ?? 42;
        var request = new FinetuneRequest
        {
            BaseDir = args.ExistingDir("base", "the Hugging Face model folder"),
            DataPath = args.ExistingFile("data", "a .jsonl or .csv file with a text and a label column"),
            ValidationPath = args.String("validation"),
            ValidationSplit = args.Double("validation-split"),
            TextColumn = args.Required("text-column", "the column holding the input text"),
            LabelColumn = args.Required("label-column", "the column holding the label text"),
            Template = args.String("template"),
            Method = args.String("method"),
            ConfigPath = args.String("config"),
            MethodOptions = new MethodOptions
            {
                R = args.Int("r", min: 1),
                LoraAlpha = args.Double("lora-alpha"),
                LoraDropout = args.Double("lora-dropout"),
                TargetModules = args.String("target-modules")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                NumVirtualTokens = args.Int("num-virtual-tokens", min: 1),
                PromptInitText = args.String("prompt-init-text"),
                EncoderHiddenSize = args.Int("encoder-hidden-size", min: 1),
                PrefixProjection = args.Flag("prefix-projection"),
                UseDora = args.Flag("use-dora"),
                LoraBias = args.Flag("lora-bias"),
                ExcludeModules = args.String("exclude-modules")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Alpha = args.Double("alpha"),
                DecomposeBoth = args.Flag("decompose-both"),
                DecomposeFactor = args.Int("decompose-factor"),
                DInitial = args.Double("d-initial"),
                ProjectionPrngKey = args.Int("projection-prng-key", min: 0),
                InitR = args.Int("init-r", min: 1),
                TargetR = args.Int("target-r", min: 1),
                OrthRegWeight = args.Double("orth-reg-weight"),
                OftBlockSize = args.Int("oft-block-size", min: 1),
                ApplyGs = args.Flag("apply-gs"),
                BoftBlockSize = args.Int("boft-block-size", min: 1), BoftBlockNum = args.Int("boft-block-num", min: 1),
                BoftNButterflyFactor = args.Int("boft-n-butterfly-factor", min: 1),
                NFrequency = args.Int("n-frequency", min: 1),
                Scaling = args.Double("scaling"),
                RandomLocSeed = args.Int("random-loc-seed", min: 0),
            },
            OptimizerName = args.String("optimizer") ?? "adamw",
            Options = new FinetuneOptions
            {
                Lr = args.Double("lr") ?? throw new PeftOnnxException("train: missing --lr (learning rate)"),
                Epochs = args.Int("epochs", min: 1) ?? throw new PeftOnnxException("train: missing --epochs (passes over the training data, >= 1)"),
                BatchSize = args.Int("batch-size", min: 1)!.Value,
                GradientAccumulation = args.Int("grad-accum", min: 1)!.Value,
                MaxGradNorm = args.Double("max-grad-norm"),
                WarmupSteps = args.Int("warmup-steps", min: 0)!.Value,
                WeightDecay = args.Double("weight-decay") ?? 0.01,
                Seed = seed,
                StopAfterEpoch = args.Int("stop-after-epoch", min: 1),
            },
            MaxLength = args.Int("max-length", min: 1), TargetMaxLength = args.Int("target-max-length", min: 1),
            OutDir = args.Required("out", "the folder for the adapter, checkpoints, metrics.jsonl and loss.png"),
            Resume = args.Flag("resume"),
            Device = DeviceArgument.Choice(args),
        };
        var json = args.Flag("json");
        args.EnsureAllUsed();

        var report = FinetuneJob.Run(request, ConsoleProgress.Run, Console.Error);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["epochs"] = report.Run.Epochs,
                ["final_accuracy"] = report.Run.Epochs.LastOrDefault()?.EvalAccuracy,
                ["completed"] = report.Run.Completed,
                ["resumed_from_epoch"] = report.Run.ResumedFromEpoch,
                ["peft_type"] = report.PeftType,
                ["trainable"] = report.Trainable,
                ["train_rows"] = report.TrainRows,
                ["validation_rows"] = report.ValidationRows,
                ["labels"] = report.Labels,
                ["out"] = request.OutDir,
                ["seconds"] = Math.Round(report.Seconds, 3),
            }, EpochMetrics.Json));
        }
        return 0;
    }
}
