namespace Peft.Onnx.Cli;

/// <summary>One verb of peft-onnx. Returns the exit code; bad input throws PeftOnnxException.</summary>
public interface ICommand
{
    string Name { get; }
    string Summary { get; }
    int Run(ArgReader args);
}
