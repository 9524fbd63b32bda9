using Peft.Onnx.Cli;
using Peft.Onnx.Cli.Commands;

ICommand[] verbs = [new InspectCommand(), new ForwardCommand(), new TrainCommand(), new ExportCommand(), new GenerateCommand(), new CompareCommand(), new BenchCommand(), new LoadCommand()];
return CommandLineApp.Run(verbs, args);
