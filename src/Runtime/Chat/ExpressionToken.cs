namespace Peft.Onnx.Runtime.Chat;

/// <summary>A token of a template expression: a name, a string or number literal, an operator, or the end.</summary>
internal readonly record struct ExpressionToken(ExpressionTokenKind Kind, string Text, object? Value = null);

internal enum ExpressionTokenKind { Name, String, Number, Operator, End }
