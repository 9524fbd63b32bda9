using Peft.Onnx.Cli.Commands;

namespace Peft.Onnx.Cli;

/// <summary>The verbs of peft-onnx, in the order --help lists them.</summary>
public static class Verbs
{
    public static IReadOnlyList<ICommand> All() =>
        [new InspectCommand(), new ForwardCommand(), new TrainCommand(), new ExportCommand(), new GenerateCommand(), new CompareCommand(), new BenchCommand(), new LoadCommand(), new ServeCommand()];
}
