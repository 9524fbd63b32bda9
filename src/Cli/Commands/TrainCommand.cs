using System.Globalization;
using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Trainer.Finetune;
using Peft.Onnx.Trainer.Training;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `train`: the options of a one-batch run (--batch), handed to <see cref="OneBatchJob"/>, or of a fine-tune job
/// on a labelled file (--data, <see cref="TrainDataMode"/>).
/// </summary>
public sealed class TrainCommand : ICommand
{
    public string Name => "train";
    public string Summary => "train an adapter on one batch (--batch, --steps) or a labelled file (--data, --epochs), saved in PEFT's format to --out";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        SharedOptions.Base(),
        SharedOptions.Adapter("--batch: continue this saved adapter"),
        VerbOption.Value("config", "F.json", "a new adapter from this adapter_config.json (--data: instead of --method)"),
        VerbOption.Value("out", "DIR", "the folder to write the adapter to (--data: also checkpoints, metrics.jsonl, loss.png)"),
        VerbOption.Value("batch", "F.safetensors", "train on this one batch: input_ids, attention_mask and labels"),
        VerbOption.Value("steps", "N", "--batch: optimizer steps on the batch"),
        VerbOption.Value("optimizer", string.Join("|", OptimizerSettings.Names), "--batch: the optimizer (--data trains with adamw)"),
        VerbOption.Value("lr", "X", "the learning rate (--data: the peak of a linear decay)"),
        VerbOption.Value("betas", "B1,B2", "adamw's betas"),
        VerbOption.Value("eps", "E", "adamw's epsilon"),
        VerbOption.Value("weight-decay", "W", "weight decay (default: the optimizer's; 0.01 with --data)"),
        VerbOption.Value("seed", "S", "seed of a new adapter's weights (default 0; 42 with --data, which also shuffles with it)"),
        VerbOption.Value("data", "F.jsonl|F.csv", "fine-tune on this labelled file, epochs with evaluation, as the PEFT guides"),
        VerbOption.Value("validation", "F", "--data: the validation file (same columns)"),
        VerbOption.Value("validation-split", "X", "--data: hold out this fraction of --data for validation instead"),
        VerbOption.Value("text-column", "C", "--data: the column holding the input text"),
        VerbOption.Value("label-column", "C", "--data: the column holding the label text"),
        VerbOption.Value("template", "TEXT", $"--data: the prompt around {{text}} (default \"{ExampleBuilder.DefaultCausalTemplate}\" for causal models)"),
        VerbOption.Value("method", string.Join("|", FinetuneSetup.Methods), "--data: the PEFT method of a new adapter"),
        VerbOption.Value("r", "N", "--method lora|loha|lokr|hra: the rank; oft: the block count"),
        VerbOption.Value("lora-alpha", "X", "--method lora: the scale numerator"),
        VerbOption.Value("lora-dropout", "X", "--method lora: dropout on the adapter's input"),
        VerbOption.Value("target-modules", "M1,M2", "--method lora|ia3: the modules to adapt (all-linear: every linear layer but the output head)"),
        VerbOption.Flag("use-dora", "--method lora: DoRA, a trained magnitude per output over the normalised adapted weight"),
        VerbOption.Flag("lora-bias", "--method lora: give lora_B a bias (merged into the base bias)"),
        VerbOption.Value("exclude-modules", "M1,M2", "--method lora: modules never adapted (names or dotted suffixes)"),
        VerbOption.Value("num-virtual-tokens", "N", "--method prompt_tuning|p_tuning|prefix_tuning: virtual tokens"),
        VerbOption.Value("prompt-init-text", "TEXT", "--method prompt_tuning: start the soft prompt from this text"),
        VerbOption.Value("encoder-hidden-size", "N", "--method p_tuning|prefix_tuning: the prompt encoder's hidden size"),
        VerbOption.Flag("prefix-projection", "--method prefix_tuning: learn the prefix through a projection"),
        VerbOption.Value("alpha", "X", "--method loha|lokr: the scale numerator (scale alpha / r)"),
        VerbOption.Flag("decompose-both", "--method lokr: also split the left Kronecker factor into a rank-r product"),
        VerbOption.Value("decompose-factor", "N", "--method lokr: the largest factor of the Kronecker split (-1: the most balanced)"),
        VerbOption.Value("d-initial", "X", "--method vera: lambda_d's initial value (default 0.1; --r: the rank, default 256)"),
        VerbOption.Value("projection-prng-key", "N", "--method vera: seed of the shared projections vera_A / vera_B (default 0)"),
        VerbOption.Value("init-r", "N", "--method adalora: the rank of every target (default 12; --lora-alpha: the scale numerator)"),
        VerbOption.Value("target-r", "N", "--method adalora: must equal --init-r (rank re-allocation is not implemented)"),
        VerbOption.Value("orth-reg-weight", "X", "--method adalora: weight of the orthogonal regulariser in the loss (default 0.5)"),
        VerbOption.Value("oft-block-size", "N", "--method oft: the side of each rotation block (32 unless --r gives the block count)"),
        VerbOption.Value("boft-block-size", "N", "--method boft: the side of each block (4 unless --boft-block-num gives the block count)"),
        VerbOption.Value("boft-block-num", "N", "--method boft: the blocks per layer (instead of --boft-block-size)"),
        VerbOption.Value("boft-n-butterfly-factor", "N", "--method boft: butterfly factors, the permuted block-diagonal rotations chained (default 1)"),
        VerbOption.Flag("apply-gs", "--method hra: orthonormalise the reflection vectors first (Gram-Schmidt)"),
        VerbOption.Value("n-frequency", "N", "--method fourierft: spectrum entries per layer (1000 unless given)"),
        VerbOption.Value("scaling", "X", "--method fourierft: the delta's scale (150 unless given)"),
        VerbOption.Value("random-loc-seed", "S", "--method fourierft: the seed of the spectrum positions (777 unless given)"),
        VerbOption.Value("epochs", "E", "--data: passes over the training data"),
        VerbOption.Value("batch-size", "B", "--data: rows per batch", "8"),
        VerbOption.Value("grad-accum", "N", "--data: batches per optimizer step", "1"),
        VerbOption.Value("max-grad-norm", "X", "--data: clip the gradients' norm to X"),
        VerbOption.Value("warmup-steps", "N", "--data: linear warm-up steps", "0"),
        VerbOption.Value("stop-after-epoch", "E", "--data: stop after this epoch (continue with --resume)"),
        VerbOption.Value("max-length", "N", "--data: the most tokens of an example (a longer prompt loses its start)"),
        VerbOption.Value("target-max-length", "N", "--data: the most tokens of a target"),
        VerbOption.Flag("resume", "--data: continue from the last checkpoint in --out"),
        SharedOptions.Device,
        SharedOptions.Json,
    ];

    public int Run(ArgReader args)
    {
        if (args.String("data") is not null)
            return TrainDataMode.Run(args);
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder");
        var adapterDir = args.OptionalExistingDir("adapter");
        var configPath = args.String("config");
        var outDir = args.Required("out", "the folder to write the trained adapter to");
        var batchPath = args.ExistingFile("batch", "a safetensors file with input_ids, attention_mask and labels");
        var steps = args.Int("steps", min: 1) ?? throw new PeftOnnxException("train: missing --steps (optimizer steps on the batch, >= 1)");
        var optimizerName = args.Required("optimizer", "sgd or adamw");
        if (!OptimizerSettings.Names.Contains(optimizerName))
            throw new PeftOnnxException($"train: --optimizer '{optimizerName}' is not one of {string.Join(", ", OptimizerSettings.Names)}");
        var lr = args.Double("lr") ?? throw new PeftOnnxException("train: missing --lr (learning rate)");
        var betas = Betas(args.String("betas"));
        var optimizer = new OptimizerSettings(optimizerName, lr, betas?.Item1, betas?.Item2, args.Double("eps"), args.Double("weight-decay"));
        var seed = args.Int("seed", min: 0);
        var json = args.Flag("json");
        var device = DeviceArgument.Choice(args);
        args.EnsureAllUsed();

        var report = OneBatchJob.Run(new OneBatchRequest
        {
            BaseDir = baseDir,
            AdapterDir = adapterDir,
            ConfigPath = configPath,
            OutDir = outDir,
            BatchPath = batchPath,
            Steps = steps,
            Optimizer = optimizer,
            Seed = seed,
            Device = device,
        }, Console.Error);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["losses"] = report.Losses.Select(l => (double)l).ToArray(),
                ["final_loss"] = report.FinalLoss is { } f ? (double)f : null,
                ["steps"] = steps,
                ["optimizer"] = optimizer.Describe(),
                ["peft_type"] = report.PeftType,
                ["trainable"] = report.Trainable,
                ["out"] = outDir,
                ["seconds"] = Math.Round(report.Seconds, 3),
            }));
        }
        return 0;
    }

    private static (double, double)? Betas(string? text)
    {
        if (text is null) return null;
        var parts = text.Split(',');
        if (parts.Length == 2
            && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var b1)
            && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var b2)
            && double.IsFinite(b1) && double.IsFinite(b2))
            return (b1, b2);
        throw new PeftOnnxException($"train: --betas '{text}' must be two numbers B1,B2 (e.g. 0.9,0.999)");
    }
}
