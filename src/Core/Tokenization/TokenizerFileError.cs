using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>Turns whatever reading a tokenizer file throws into one <see cref="PeftOnnxException"/> naming the file.</summary>
internal static class TokenizerFileError
{
    public static T Guard<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (PeftOnnxException)
        {
            throw;
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or FormatException or IOException
                                      or UnauthorizedAccessException or InvalidOperationException or KeyNotFoundException
                                      or ArgumentException or IndexOutOfRangeException or OverflowException
                                      or NotSupportedException or System.Text.DecoderFallbackException)
        {
            throw new PeftOnnxException($"{path}: {Describe(e)}", e);
        }
    }

    public static PeftOnnxException Problem(string path, string problem) => new($"{path}: {problem}");

    private static string Describe(Exception e)
    {
        string message = e switch
        {
            JsonException j => $"invalid JSON ({FirstLine(j.Message)})",
            IndexOutOfRangeException => "inconsistent model data (index out of range)",
            _ => FirstLine(e.Message),
        };
        return message;
    }

    private static string FirstLine(string message)
    {
        int newline = message.IndexOfAny(['\r', '\n']);
        return newline < 0 ? message : message[..newline];
    }
}
