using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Cli;

/// <summary>Non-fatal findings, printed to stderr so --json stdout stays one object.</summary>
public static class Warnings
{
    public static void Unexpected(LoadReport report)
    {
        if (report.Unexpected.Count > 0)
            Console.Error.WriteLine($"warning: checkpoint tensors not used by the model: {string.Join(", ", report.Unexpected.Take(8))}{(report.Unexpected.Count > 8 ? $" (and {report.Unexpected.Count - 8} more)" : "")}");
    }
}
