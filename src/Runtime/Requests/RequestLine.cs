namespace Peft.Onnx.Runtime.Requests;

/// <summary>
/// One line of a requests file (`generate --requests`): its id, the prompt as ids or text, the adapter of a
/// multi-adapter export (null = the base) and its own new-token limit (null = the run's).
/// </summary>
public sealed record RequestLine(string Id, IReadOnlyList<int>? InputIds, string? Prompt, string? Adapter, int? MaxNewTokens);
