using System.Text;

namespace Peft.Onnx.Core;

/// <summary>
/// Text taken from an input file (a key, a tensor name, a column) as it may appear inside a one-line
/// <see cref="PeftOnnxException"/> message: quoted, control characters and line breaks escaped, long text cut.
/// </summary>
internal static class MessageText
{
    private const int MaxChars = 120;

    public static string Quote(string? value)
    {
        if (value is null) return "null";
        var text = new StringBuilder(Math.Min(value.Length, MaxChars) + 2).Append('\'');
        int shown = 0;
        foreach (char c in value)
        {
            if (shown++ == MaxChars) { text.Append("..."); break; }
            switch (c)
            {
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                default:
                    if (char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085') text.Append("\\u").Append(((int)c).ToString("x4"));
                    else text.Append(c);
                    break;
            }
        }
        return text.Append('\'').ToString();
    }

    public static bool HasLineBreak(string message) => message.AsSpan().IndexOfAny("\r\n\u2028\u2029\u0085") >= 0;

    /// <summary>A message with its line breaks escaped (\n), so text quoted from a file cannot split it.</summary>
    public static string OneLine(string message) =>
        HasLineBreak(message)
            ? message.Replace("\r", "\\r").Replace("\n", "\\n").Replace("\u2028", "\\u2028").Replace("\u2029", "\\u2029").Replace("\u0085", "\\u0085")
            : message;

    /// <summary>
    /// For a parser's entry point: <c>catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }</c>
    /// keeps the one-line promise whatever file text a message quotes.
    /// </summary>
    public static PeftOnnxException OneLine(PeftOnnxException ex) => new(OneLine(ex.Message), ex.InnerException ?? ex);
}
