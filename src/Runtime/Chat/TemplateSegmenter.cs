using System.Text;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>
/// Splits a template into text, {{ }} and {% %} segments (comments dropped) with Jinja's whitespace control as
/// transformers configures it for chat templates: "-" strips whitespace on that side, trim_blocks drops the newline
/// after a block or comment tag, lstrip_blocks drops spaces and tabs before one on its line.
/// </summary>
internal static class TemplateSegmenter
{
    public static List<TemplateSegment> Split(string template)
    {
        var segments = new List<TemplateSegment>();
        var text = new StringBuilder();
        int i = 0;
        bool stripNext = false, trimNewline = false, startsLine = true;
        while (i < template.Length)
        {
            int open = NextTag(template, i);
            var literal = template[i..(open < 0 ? template.Length : open)];
            if (stripNext) literal = literal.TrimStart();
            else if (trimNewline && literal.StartsWith('\n')) { literal = literal[1..]; startsLine = true; }
            else if (trimNewline && literal.StartsWith("\r\n", StringComparison.Ordinal)) { literal = literal[2..]; startsLine = true; }
            text.Append(literal);
            if (open < 0) break;

            char kind = template[open + 1];
            string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
            int start = open + 2;
            bool stripBefore = start < template.Length && template[start] == '-';
            if (stripBefore) start++;
            else if (kind != '{' && !(start < template.Length && template[start] == '+')) StripLineIndent(text, startsLine);
            if (start < template.Length && template[start] == '+') start++;
            int end = kind == '#' ? template.IndexOf(close, start, StringComparison.Ordinal) : FindClose(template, start, close);
            if (end < 0) throw new TemplateException($"a tag opened at character {open} is never closed ('{close}' expected)");
            bool stripAfter = end > start && template[end - 1] == '-';
            var inner = template[start..(stripAfter ? end - 1 : end)];
            if (stripBefore)
            {
                var trimmed = text.ToString().TrimEnd();
                text.Clear().Append(trimmed);
            }
            if (kind != '#')
            {
                if (text.Length > 0) segments.Add(new(TemplateSegmentKind.Text, text.ToString()));
                text.Clear();
                segments.Add(new(kind == '{' ? TemplateSegmentKind.Output : TemplateSegmentKind.Statement, inner.Trim()));
            }
            stripNext = stripAfter;
            trimNewline = kind != '{';
            startsLine = false;
            i = end + close.Length;
        }
        if (text.Length > 0) segments.Add(new(TemplateSegmentKind.Text, text.ToString()));
        return segments;
    }

    private static int NextTag(string s, int from)
    {
        for (int i = from; i < s.Length - 1; i++)
            if (s[i] == '{' && s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>The closing delimiter outside string literals.</summary>
    private static int FindClose(string s, int from, string close)
    {
        char quote = '\0';
        for (int i = from; i < s.Length - 1; i++)
        {
            char c = s[i];
            if (quote != '\0')
            {
                if (c == '\\') i++;
                else if (c == quote) quote = '\0';
            }
            else if (c is '\'' or '"') quote = c;
            else if (c == close[0] && s[i + 1] == close[1]) return i;
        }
        return -1;
    }

    /// <summary>lstrip_blocks: spaces and tabs between the line start and a block tag go.</summary>
    private static void StripLineIndent(StringBuilder text, bool startsLine)
    {
        int j = text.Length;
        while (j > 0 && text[j - 1] is ' ' or '\t') j--;
        if (j == 0 ? startsLine : text[j - 1] == '\n') text.Length = j;
    }
}
