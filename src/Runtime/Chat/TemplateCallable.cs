namespace Peft.Onnx.Runtime.Chat;

/// <summary>A function a template can call: global functions and the methods of strings and mappings.</summary>
internal delegate object? TemplateCallable(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs);
