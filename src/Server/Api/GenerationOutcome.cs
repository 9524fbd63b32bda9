namespace Peft.Onnx.Server.Api;

/// <summary>How a row ended: its text (up to a stop sequence), its token ids, and OpenAI's finish_reason.</summary>
public sealed record GenerationOutcome(string Text, int[] TokenIds, string FinishReason);
