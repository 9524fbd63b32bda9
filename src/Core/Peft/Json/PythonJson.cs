using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// Writes JSON the way PEFT's save_pretrained does, <c>json.dumps(d, indent=2, sort_keys=True)</c>: keys sorted,
/// two-space indent, ", "/": " separators, non-ASCII escaped as \uXXXX, floats as Python's repr, no final newline.
/// A config we save is then byte-identical to the one PEFT would write.
/// </summary>
public static class PythonJson
{
    public static string Dumps(JsonElement element)
    {
        var text = new StringBuilder();
        Write(element, text, 0);
        return text.ToString();
    }

    private static void Write(JsonElement element, StringBuilder text, int depth)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var properties = element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
                if (properties.Count == 0) { text.Append("{}"); return; }
                text.Append('{');
                for (int i = 0; i < properties.Count; i++)
                {
                    text.Append(i == 0 ? "\n" : ",\n").Append(' ', 2 * (depth + 1));
                    WriteString(properties[i].Name, text);
                    text.Append(": ");
                    Write(properties[i].Value, text, depth + 1);
                }
                text.Append('\n').Append(' ', 2 * depth).Append('}');
                return;
            case JsonValueKind.Array:
                var items = element.EnumerateArray().ToList();
                if (items.Count == 0) { text.Append("[]"); return; }
                text.Append('[');
                for (int i = 0; i < items.Count; i++)
                {
                    text.Append(i == 0 ? "\n" : ",\n").Append(' ', 2 * (depth + 1));
                    Write(items[i], text, depth + 1);
                }
                text.Append('\n').Append(' ', 2 * depth).Append(']');
                return;
            case JsonValueKind.String: WriteString(element.GetString()!, text); return;
            case JsonValueKind.Number: text.Append(Number(element.GetRawText())); return;
            case JsonValueKind.True: text.Append("true"); return;
            case JsonValueKind.False: text.Append("false"); return;
            default: text.Append("null"); return;
        }
    }

    /// <summary>
    /// json.loads makes a Python float of any number with a fraction or exponent, and json.dumps writes it back
    /// as repr(float); integers stay as written.
    /// </summary>
    private static string Number(string raw)
    {
        if (raw.IndexOfAny(['.', 'e', 'E']) < 0) return raw;
        var value = double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);
        return double.IsFinite(value) ? PythonFloat.Repr(value) : value > 0 ? "Infinity" : "-Infinity";
    }

    private const string Hex = "0123456789abcdef";

    /// <summary>A JSON string with ensure_ascii=True escaping: only printable ASCII is written as is.</summary>
    public static void WriteString(string value, StringBuilder text)
    {
        text.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                default:
                    // UTF-16 code units are what Python writes too (astral characters as surrogate pairs).
                    if (c < ' ' || c > '~') text.Append('\\').Append('u').Append(Hex[c >> 12]).Append(Hex[(c >> 8) & 0xF]).Append(Hex[(c >> 4) & 0xF]).Append(Hex[c & 0xF]);
                    else text.Append(c);
                    break;
            }
        }
        text.Append('"');
    }
}
