namespace Peft.Onnx.Trainer.Modeling;

/// <summary>Non-fatal findings, written to stderr by default so a --json stdout stays one object.</summary>
public static class Warnings
{
    public static void Unexpected(LoadReport report, TextWriter? log = null)
    {
        if (report.Unexpected.Count > 0)
            (log ?? Console.Error).WriteLine($"warning: checkpoint tensors not used by the model: {string.Join(", ", report.Unexpected.Take(8))}{(report.Unexpected.Count > 8 ? $" (and {report.Unexpected.Count - 8} more)" : "")}");
    }
}
