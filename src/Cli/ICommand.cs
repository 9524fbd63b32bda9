namespace Peft.Onnx.Cli;

/// <summary>
/// One verb of peft-onnx: its options (what --help lists and the parser accepts) and what it does with them.
/// Returns the exit code; bad input throws PeftOnnxException.
/// </summary>
public interface ICommand
{
    string Name { get; }
    string Summary { get; }
    IReadOnlyList<VerbOption> Options { get; }
    int Run(ArgReader args);
}
