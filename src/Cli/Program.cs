using Peft.Onnx.Cli;

return CommandLineApp.Run(Verbs.All(), args);
