using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Cli.Commands;

/// <summary>`inspect`: parameter counts from config.json alone, printed as PEFT's print_trainable_parameters.</summary>
public sealed class InspectCommand : ICommand
{
    public string Name => "inspect";
    public string Summary => "trainable / all parameter counts of a base model (+ adapter), from configs alone";

    public int Run(ArgReader args)
    {
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder (config.json is enough)");
        var json = args.Flag("json");
        args.EnsureAllUsed();

        var config = ModelConfig.Load(baseDir);
        var architecture = Architecture.For(config);
        long all = architecture.CountParameters();
        long trainable = all; // a plain model trains every parameter
        var percent = 100.0 * trainable / all;
        var line = $"trainable params: {trainable:N0} || all params: {all:N0} || trainable%: {PythonFloat.Repr(percent)}";
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["trainable"] = trainable, ["all"] = all, ["trainable_percent"] = percent,
                ["line"] = line, ["model_type"] = config.ModelType, ["class"] = architecture.ClassName,
            }));
        }
        else Console.WriteLine(line);
        return 0;
    }
}
