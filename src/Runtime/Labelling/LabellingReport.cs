namespace Peft.Onnx.Runtime.Labelling;

/// <summary>What a labelling run wrote: the CSV, its rows and columns, how often each label came out, and where it ran.</summary>
public sealed record LabellingReport(string OutPath, int Rows, IReadOnlyList<string> Columns, IReadOnlyDictionary<string, int> LabelCounts, double Seconds, string Device);
