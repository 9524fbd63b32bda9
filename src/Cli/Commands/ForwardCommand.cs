using Peft.Onnx.Trainer;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Cli.Commands;

/// <summary>`forward`: logits (and loss) of a model on a batch read from safetensors.</summary>
public sealed class ForwardCommand : ICommand
{
    public string Name => "forward";
    public string Summary => "logits and loss of a base model (+ adapter) on --inputs, written to --out";

    public int Run(ArgReader args)
    {
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder");
        var inputs = args.ExistingFile("inputs", "a safetensors file with input_ids, attention_mask [, labels]");
        var output = args.Required("out", "the safetensors file to write logits to");
        var device = args.Choice("device", "auto", "cpu", "cuda", "auto");
        args.EnsureAllUsed();

        var batch = ForwardBatch.Read(inputs);
        using var model = ModelLoader.Load(baseDir, out var report);
        TorchDevice.Resolve(device, Console.Error.WriteLine);
        Warnings.Unexpected(report);
        batch.CheckVocabulary(model.Architecture.Config.Dimensions.VocabSize, inputs);
        var result = ForwardPass.Run(model, batch);
        ForwardPass.Write(result, output);
        Console.Error.WriteLine($"wrote logits [{string.Join(", ", result.LogitsShape)}]{(result.Loss is { } l ? $" and loss {l:G9}" : "")} to {output}");
        return 0;
    }
}
