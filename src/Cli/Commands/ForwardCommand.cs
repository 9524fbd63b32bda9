using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Cli.Commands;

/// <summary>`forward`: logits (and loss) of a model, optionally with an adapter, on a batch read from safetensors.</summary>
public sealed class ForwardCommand : ICommand
{
    public string Name => "forward";
    public string Summary => "logits and loss of a base model (+ adapter) on --inputs, written to --out";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        SharedOptions.Base(),
        SharedOptions.Adapter(),
        VerbOption.Flag("merge", "merge the adapter into the base weights before the forward (LoRA, IA3)"),
        VerbOption.Value("onnx", "DIR", "run this exported folder with ONNX Runtime instead of --base"),
        VerbOption.Value("inputs", "F.safetensors", "input_ids and attention_mask [batch, seq] (int64), optional labels"),
        VerbOption.Value("out", "F.safetensors", "where to write logits (float32) and, with labels, loss"),
        SharedOptions.Device,
    ];

    public int Run(ArgReader args)
    {
        // forward --onnx DIR: the exported graphs with ONNX Runtime instead of the TorchSharp model
        if (args.String("onnx") is { } onnxDir) return ForwardOnnx.Run(args, onnxDir);
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder");
        var adapterDir = args.OptionalExistingDir("adapter");
        var merge = args.Flag("merge");
        var inputs = args.ExistingFile("inputs", "a safetensors file with input_ids, attention_mask [, labels]");
        var output = args.Required("out", "the safetensors file to write logits to");
        var device = args.Choice("device", "auto", "cpu", "cuda", "auto");
        args.EnsureAllUsed();
        if (merge && adapterDir is null) throw new PeftOnnxException("forward: --merge needs --adapter (the adapter to merge into the base weights)");

        var batch = ForwardBatch.Read(inputs);
        // A learned position table (GPT-2, OPT) has no row beyond its length: refused before weights are read.
        ModelConfig.Load(baseDir).PositionTable?.Check(batch.Shape[1], adapterDir is null ? 0 : AdapterConfig.Load(adapterDir).VirtualTokensBeforeInput, inputs);
        TorchDevice.Resolve(device, Console.Error.WriteLine);
        ForwardResult result;
        if (adapterDir is null)
        {
            using var model = ModelLoader.Load(baseDir, out var report);
            Warnings.Unexpected(report);
            batch.CheckVocabulary(model.Architecture.Config.Dimensions.VocabSize, inputs);
            batch.CheckLabels(model, inputs);
            result = ForwardPass.Run(model, batch);
        }
        else
        {
            using var model = PeftModelSource.FromAdapter(baseDir, adapterDir, out var report, inferenceMode: true);
            Warnings.Unexpected(report);
            batch.CheckVocabulary(model.Base.Architecture.Config.Dimensions.VocabSize, inputs);
            batch.CheckLabels(model.Base, inputs);
            if (merge)
            {
                var merged = AdapterMerge.MergeAndUnload(model);
                Console.Error.WriteLine($"merged the {model.Config.PeftType} adapter into the base weights");
                result = ForwardPass.Run(merged, batch);
            }
            else result = ForwardPass.Run(model, batch);
        }
        ForwardPass.Write(result, output);
        Console.Error.WriteLine($"wrote logits [{string.Join(", ", result.LogitsShape)}]{(result.Loss is { } l ? $" and loss {l:G9}" : "")} to {output}");
        return 0;
    }
}
