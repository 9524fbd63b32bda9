using System.Text;

namespace Peft.Onnx.Core.Data;

/// <summary>
/// RFC 4180 CSV: a header row, fields optionally in double quotes, "" for a quote inside a quoted field,
/// line breaks allowed inside quotes, CRLF or LF line ends. Rows must have as many fields as the header.
/// </summary>
public static class CsvFile
{
    public static DataTable Read(string path)
    {
        string text;
        try { text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(File.ReadAllBytes(path)); }
        catch (DecoderFallbackException) { throw new PeftOnnxException($"{path}: not valid UTF-8 text"); }
        return Parse(text, path);
    }

    public static DataTable Parse(string text, string path)
    {
        try { return ParseChecked(text, path); }
        catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }
    }

    private static DataTable ParseChecked(string text, string path)
    {
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        var records = Records(text, path).ToList();
        if (records.Count == 0 || records[0].Length == 0 || (records[0].Length == 1 && records[0][0].Length == 0))
            throw new PeftOnnxException($"{path}: the file is empty (expected a header row and data rows)");
        var header = records[0];
        var dupes = header.GroupBy(h => h).FirstOrDefault(g => g.Count() > 1);
        if (dupes != null) throw new PeftOnnxException($"{path}: column '{dupes.Key}' appears twice in the header");
        var rows = new List<string[]>();
        for (int i = 1; i < records.Count; i++)
        {
            var r = records[i];
            if (r.Length == 1 && r[0].Length == 0) continue; // blank line
            if (r.Length != header.Length)
                throw new PeftOnnxException($"{path}: record {i + 1} has {r.Length} fields but the header has {header.Length}");
            rows.Add(r);
        }
        return new DataTable(path, header, rows);
    }

    private static IEnumerable<string[]> Records(string text, string path)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        int i = 0, line = 1;
        bool any = false;
        while (i < text.Length)
        {
            char c = text[i];
            any = true;
            if (c == '"' && field.Length == 0)
            {
                int start = line;
                i++;
                while (true)
                {
                    if (i >= text.Length) throw new PeftOnnxException($"{path}: line {start}: a quoted field is never closed");
                    if (text[i] == '"')
                    {
                        if (i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    if (text[i] == '\n') line++;
                    field.Append(text[i++]);
                }
                if (i < text.Length && text[i] is not (',' or '\r' or '\n'))
                    throw new PeftOnnxException($"{path}: line {line}: unexpected character '{text[i]}' after a closing quote");
                continue;
            }
            if (c == ',') { fields.Add(field.ToString()); field.Clear(); i++; continue; }
            if (c == '\r' || c == '\n')
            {
                fields.Add(field.ToString());
                field.Clear();
                yield return fields.ToArray();
                fields.Clear();
                any = false;
                i += c == '\r' && i + 1 < text.Length && text[i + 1] == '\n' ? 2 : 1;
                line++;
                continue;
            }
            field.Append(c);
            i++;
        }
        if (any || fields.Count > 0)
        {
            fields.Add(field.ToString());
            yield return fields.ToArray();
        }
    }
}
