namespace Peft.Onnx.Verification;

/// <summary>One prompt for the greedy comparison and, from a data set, the label its answer should match.</summary>
public sealed record ComparePrompt(long[] Ids, string? Label);
