namespace Peft.Onnx.Core.Tokenization;

/// <summary>Python's str whitespace rules, which Hugging Face's slow tokenizers use when stripping.</summary>
internal static class PythonText
{
    /// <summary>str.isspace: .NET's white space plus the information separators U+001C..U+001F.</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    public static string LStrip(string s)
    {
        int start = 0;
        while (start < s.Length && IsSpace(s[start])) start++;
        return s[start..];
    }

    public static string RStrip(string s)
    {
        int end = s.Length;
        while (end > 0 && IsSpace(s[end - 1])) end--;
        return s[..end];
    }

    public static string Strip(string s) => LStrip(RStrip(s));
}
