using Peft.Onnx.Cli;
using Peft.Onnx.Cli.Commands;
using Peft.Onnx.Core;

ICommand[] commands = [new InspectCommand(), new ForwardCommand(), new TrainCommand(), new ExportCommand(), new GenerateCommand(), new CompareCommand(), new BenchCommand(), new LoadCommand()];

if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.WriteLine("peft-onnx: train PEFT adapters, compile them into ONNX, serve them with ONNX Runtime.");
    Console.WriteLine("usage: peft-onnx <verb> [options]   (add --verbose for stack traces)");
    foreach (var c in commands) Console.WriteLine($"  {c.Name,-10} {c.Summary}");
    return args.Length == 0 ? 2 : 0;
}

var verbose = args.Contains("--verbose");
var rest = args.Skip(1).Where(a => a != "--verbose").ToArray();
var command = commands.FirstOrDefault(c => c.Name == args[0]);
if (command == null)
{
    Console.Error.WriteLine($"error: unknown verb '{args[0]}' (expected one of {string.Join(", ", commands.Select(c => c.Name))})");
    return 2;
}
try
{
    return command.Run(new ArgReader(command.Name, rest));
}
catch (PeftOnnxException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    if (verbose) Console.Error.WriteLine(ex);
    return 2;
}
catch (Exception ex) when (!verbose)
{
    Console.Error.WriteLine($"error: {ex.GetType().Name}: {ex.Message.Split('\n')[0]} (run with --verbose for details)");
    return 1;
}
