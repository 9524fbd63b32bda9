using Peft.Onnx.Core.Data;
using Peft.Onnx.Runtime;
using Peft.Onnx.Trainer.Inference;

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
        VerbOption.Value("adapter-name", "NAME", "with --onnx: the adapter of a multi-adapter export every row runs with (default: the base)"),
        VerbOption.Value("inputs", "F.safetensors", "input_ids and attention_mask [batch, seq] (int64), optional labels"),
        VerbOption.Value("out", "F.safetensors", "where to write logits (float32) and, with labels, loss"),
        SharedOptions.Device,
    ];

    public int Run(ArgReader args)
    {
        // forward --onnx DIR: the exported graphs with ONNX Runtime instead of the TorchSharp model
        if (args.String("onnx") is { } onnxDir) return RunOnnx(args, onnxDir);
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder");
        var adapterDir = args.OptionalExistingDir("adapter");
        var merge = args.Flag("merge");
        var (inputs, output, device) = InputsOutputDevice(args);
        return Written(TorchForward.Run(new TorchForwardRequest(baseDir, adapterDir, merge, device), inputs, Console.Error), output);
    }

    private static int RunOnnx(ArgReader args, string onnxDir)
    {
        var adapterName = args.String("adapter-name");
        var (inputs, output, device) = InputsOutputDevice(args);
        return Written(OnnxForward.Run(onnxDir, inputs, DeviceOptions.Parse(device).Device, Console.Error, adapterName), output);
    }

    /// <summary>The options both engines take; read last, so that an option neither engine takes is refused.</summary>
    private static (string Inputs, string Output, string Device) InputsOutputDevice(ArgReader args)
    {
        var inputs = args.ExistingFile("inputs", "a safetensors file with input_ids, attention_mask [, labels]");
        var output = args.Required("out", "the safetensors file to write logits to");
        var device = DeviceArgument.Choice(args);
        args.EnsureAllUsed();
        return (inputs, output, device);
    }

    private static int Written(ForwardResult result, string output)
    {
        result.Write(output);
        Console.Error.WriteLine(result.Describe(output));
        return 0;
    }
}
