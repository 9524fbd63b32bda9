using System.Text;
using System.Text.Json;

namespace Peft.Onnx.Core.Data;

/// <summary>JSON Lines: one JSON object per line; the columns are the keys of all records, in first-seen order.</summary>
public static class JsonLinesFile
{
    public static DataTable Read(string path)
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
                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    if (!index.ContainsKey(p.Name)) { index[p.Name] = columns.Count; columns.Add(p.Name); }
                    record[p.Name] = DataTable.ValueText(p.Value);
                }
                records.Add(record);
            }
        }
        var rows = records.Select(r => columns.Select(c => r.GetValueOrDefault(c, "")).ToArray()).ToList();
        return new DataTable(path, columns, rows);
    }
}
