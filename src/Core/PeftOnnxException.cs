namespace Peft.Onnx.Core;

/// <summary>
/// The project's one error type for bad input: the message is a single line that names the file, key or
/// argument and what was expected. The CLI prints it without a stack trace and exits non-zero.
/// </summary>
public class PeftOnnxException(string message, Exception? inner = null) : Exception(message, inner);
