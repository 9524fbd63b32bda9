using System.Text.Json;

namespace Peft.Onnx.Core.Data;

/// <summary>
/// Rows of a labelled data set (CSV with a header row, or JSON Lines), every value as text, as the PEFT
/// guides' `datasets` columns are used: a text column and a label column.
/// </summary>
public sealed class DataTable
{
    public DataTable(string source, IReadOnlyList<string> columns, IReadOnlyList<string[]> rows)
    {
        Source = source;
        Columns = columns;
        Rows = rows;
    }

    /// <summary>The file the rows came from (for messages).</summary>
    public string Source { get; }
    public IReadOnlyList<string> Columns { get; }
    public IReadOnlyList<string[]> Rows { get; }
    public int Count => Rows.Count;

    /// <summary>Reads .csv (RFC 4180) or .jsonl/.json lines, by extension.</summary>
    public static DataTable Read(string path)
    {
        if (!File.Exists(path)) throw new PeftOnnxException($"{path}: file not found");
        var ext = Path.GetExtension(path).ToLowerInvariant();
        var table = ext switch
        {
            ".csv" => CsvFile.Read(path),
            ".jsonl" or ".json" or ".ndjson" => JsonLinesFile.Read(path),
            _ => throw new PeftOnnxException($"{path}: unknown data format '{ext}' (expected .csv or .jsonl)"),
        };
        if (table.Count == 0) throw new PeftOnnxException($"{path}: the file has no data rows");
        return table;
    }

    /// <summary>The index of a column, or an error that lists the columns there are.</summary>
    public int ColumnIndex(string name)
    {
        for (int i = 0; i < Columns.Count; i++) if (Columns[i] == name) return i;
        throw new PeftOnnxException($"{Source}: no column '{name}' (columns: {string.Join(", ", Columns.Select(c => $"'{c}'"))})");
    }

    /// <summary>All values of one column, in row order.</summary>
    public IReadOnlyList<string> Column(string name)
    {
        var index = ColumnIndex(name);
        return Rows.Select(r => r[index]).ToList();
    }

    /// <summary>A new table holding the given rows (in that order), for splits.</summary>
    public DataTable Select(IEnumerable<int> rowIndices) => new(Source, Columns, rowIndices.Select(i => Rows[i]).ToList());

    internal static string ValueText(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString()!,
        JsonValueKind.Null => "",
        _ => value.GetRawText(),
    };
}
