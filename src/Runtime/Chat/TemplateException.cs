namespace Peft.Onnx.Runtime.Chat;

/// <summary>A chat template that does not parse, uses what the renderer lacks, or raised an exception itself.</summary>
public sealed class TemplateException(string message) : Exception(message);
