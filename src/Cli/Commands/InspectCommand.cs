using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;

namespace Peft.Onnx.Cli.Commands;

/// <summary>`inspect`: parameter counts from configs alone, printed as PEFT's print_trainable_parameters.</summary>
public sealed class InspectCommand : ICommand
{
    public string Name => "inspect";
    public string Summary => "trainable / all parameter counts of a base model (+ adapter), from configs alone";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        SharedOptions.Base("the Hugging Face model folder (config.json is enough)"),
        SharedOptions.Adapter("a PEFT adapter folder (adapter_config.json is enough)"),
        SharedOptions.Json,
    ];

    public int Run(ArgReader args)
    {
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder (config.json is enough)");
        var adapterDir = args.OptionalExistingDir("adapter");
        var json = args.Flag("json");
        args.EnsureAllUsed();

        var config = ModelConfig.Load(baseDir);
        var architecture = Architecture.For(config);
        var adapter = adapterDir is null ? null : AdapterConfig.Load(adapterDir);
        // A plain model trains every parameter; with an adapter, PEFT's own rules say what is trainable.
        var count = adapter is null
            ? new ParameterCount(architecture.CountParameters(), architecture.CountParameters())
            : ParameterCount.Count(architecture, adapter);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["trainable"] = count.Trainable,
                ["all"] = count.All,
                ["trainable_percent"] = count.TrainablePercent,
                ["line"] = count.Line,
                ["model_type"] = config.ModelType,
                ["class"] = architecture.ClassName,
                ["peft_type"] = adapter?.PeftType,
            }));
        }
        else Console.WriteLine(count.Line);
        return 0;
    }
}
