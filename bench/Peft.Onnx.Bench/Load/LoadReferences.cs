namespace Peft.Onnx.Bench.Load;

/// <summary>The prompts of a load run with their sequential answers, and how long generating those alone took.</summary>
public sealed record LoadReferences(List<LoadPrompt> Prompts, double SequentialSeconds);
