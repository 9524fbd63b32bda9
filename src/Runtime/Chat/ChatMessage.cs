namespace Peft.Onnx.Runtime.Chat;

/// <summary>One chat message as the template sees it (message['role'], message['content']).</summary>
public sealed record ChatMessage(string Role, string Content);
