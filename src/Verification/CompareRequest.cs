namespace Peft.Onnx.Verification;

/// <summary>What `compare` is asked: the three folders, where the inputs come from, and the budget of the greedy runs.</summary>
public sealed record CompareRequest(string BaseDir, string AdapterDir, string OnnxDir, string? InputsPath, string? DataPath, int? Limit,
    string? TextColumn, string? LabelColumn, string? Template, double? Tolerance, int MaxNewTokens, string Device);
