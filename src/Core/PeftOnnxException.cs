namespace Peft.Onnx.Core;

/// <summary>
/// The project's one error type for bad input: the message is a single line that names the file, key or
/// argument and what was expected. The CLI prints it without a stack trace and exits non-zero. Line breaks
/// that text quoted from an input file might carry are escaped here, so no caller can split the line.
/// </summary>
public class PeftOnnxException(string message, Exception? inner = null) : Exception(MessageText.OneLine(message), inner);
