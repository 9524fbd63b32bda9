using System.Globalization;
using System.Text;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>Tokenizes the inside of a {{ }} or {% %} tag.</summary>
internal static class ExpressionLexer
{
    private static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|", "="];

    public static List<ExpressionToken> Tokenize(string s)
    {
        var tokens = new List<ExpressionToken>();
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (char.IsLetter(c) || c == '_')
            {
                int start = i;
                while (i < s.Length && (char.IsLetterOrDigit(s[i]) || s[i] == '_')) i++;
                tokens.Add(new(ExpressionTokenKind.Name, s[start..i]));
            }
            else if (char.IsDigit(c))
            {
                int start = i;
                while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '_')) i++;
                bool real = i + 1 < s.Length && s[i] == '.' && char.IsDigit(s[i + 1]);
                if (real) { i++; while (i < s.Length && char.IsDigit(s[i])) i++; }
                var text = s[start..i].Replace("_", "");
                tokens.Add(new(ExpressionTokenKind.Number, text,
                    real ? double.Parse(text, CultureInfo.InvariantCulture) : (object)long.Parse(text, CultureInfo.InvariantCulture)));
            }
            else if (c is '\'' or '"')
            {
                var value = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= s.Length) throw new TemplateException("a string literal is never closed");
                    char d = s[i++];
                    if (d == c) break;
                    if (d != '\\' || i >= s.Length) { value.Append(d); continue; }
                    char e = s[i++];
                    value.Append(e switch { 'n' => '\n', 't' => '\t', 'r' => '\r', '0' => '\0', _ => e });
                    if (e is not ('n' or 't' or 'r' or '0' or '\\' or '\'' or '"')) value.Insert(value.Length - 1, '\\');
                }
                tokens.Add(new(ExpressionTokenKind.String, value.ToString(), value.ToString()));
            }
            else
            {
                var op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, i, o, 0, o.Length) == 0)
                    ?? throw new TemplateException($"unexpected character '{c}' in '{s}'");
                tokens.Add(new(ExpressionTokenKind.Operator, op));
                i += op.Length;
            }
        }
        tokens.Add(new(ExpressionTokenKind.End, ""));
        return tokens;
    }
}
