using System.Text;

namespace Peft.Onnx.Runtime.Labelling;

/// <summary>
/// RFC 4180 records as text: a field holding a comma, a double quote, CR or LF is put in double quotes with every
/// quote doubled; other fields are written as they are. Records end with LF (as the data/ files do; the reader takes
/// CRLF or LF). What <see cref="Core.Data.CsvFile"/> reads back is exactly what was written.
/// </summary>
public static class CsvRecordWriter
{
    public static void Append(StringBuilder text, IReadOnlyList<string> fields)
    {
        for (int i = 0; i < fields.Count; i++)
        {
            if (i > 0) text.Append(',');
            AppendField(text, fields[i]);
        }
        text.Append('\n');
    }

    public static void AppendField(StringBuilder text, string field)
    {
        if (field.AsSpan().IndexOfAny(",\"\r\n") < 0)
        {
            text.Append(field);
            return;
        }
        text.Append('"').Append(field.Replace("\"", "\"\"", StringComparison.Ordinal)).Append('"');
    }
}
