namespace Peft.Onnx.Runtime.Requests;

/// <summary>
/// What one request produced: <paramref name="Sequence"/> its own prompt (no batch padding) followed by its new tokens,
/// as a lone `generate` of it returns the row; <paramref name="NewText"/> the decoded new tokens (null without a tokenizer).
/// </summary>
public sealed record RequestResult(string Id, string? Adapter, int[] Sequence, int[] NewTokens, string? NewText);
