using System.Text;
using System.Text.Json;

namespace Peft.Onnx.Core.Data;

/// <summary>JSON Lines: one JSON object per line; the columns are the keys of all records, in first-seen order.</summary>
public static class JsonLinesFile
{
    /// <summary>A table may hold at most this many times more cells than the file has values (once past MinCellsChecked).</summary>
    private const long SparseFactor = 8, MinCellsChecked = 1_000_000;

    public static DataTable Read(string path)
    {
        try { return ReadChecked(path); }
        catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }
    }

    private static DataTable ReadChecked(string path)
    {
        var columns = new List<string>();
        var index = new Dictionary<string, int>();
        var records = new List<Dictionary<string, string>>();
        int lineNumber = 0;
        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        string[] lines;
        try { lines = utf8.GetString(File.ReadAllBytes(path)).Split('\n'); }
        catch (DecoderFallbackException) { throw new PeftOnnxException($"{path}: not valid UTF-8 text"); }
        foreach (var raw in lines)
        {
            lineNumber++;
            var line = raw.TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 32 }); }
            catch (JsonException ex) { throw new PeftOnnxException($"{path}: line {lineNumber}: invalid JSON ({ex.Message.Split('\n')[0].Split(" Path:")[0]})"); }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new PeftOnnxException($"{path}: line {lineNumber}: expected a JSON object, found {doc.RootElement.ValueKind}");
                var record = new Dictionary<string, string>();
                try
                {
                    foreach (var p in doc.RootElement.EnumerateObject())
                    {
                        if (!index.ContainsKey(p.Name)) { index[p.Name] = columns.Count; columns.Add(p.Name); }
                        record[p.Name] = DataTable.ValueText(p.Value);
                    }
                }
                // Strings are unescaped here: an escaped lone surrogate ("\ud800") cannot become text.
                catch (InvalidOperationException ex) { throw new PeftOnnxException($"{path}: line {lineNumber}: invalid JSON text ({ex.Message.Split('\n')[0]})"); }
                records.Add(record);
            }
        }
        // Every row gets a cell per column: records that share few keys would make a table far larger than the file.
        long cells = (long)records.Count * columns.Count, values = records.Sum(r => (long)r.Count);
        if (cells > MinCellsChecked && cells > SparseFactor * values)
            throw new PeftOnnxException($"{path}: {records.Count} records share too few keys ({columns.Count} distinct keys, {values} values): expected records with the same columns");
        var rows = records.Select(r => columns.Select(c => r.GetValueOrDefault(c, "")).ToArray()).ToList();
        return new DataTable(path, columns, rows);
    }
}
