using System.Text;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Runtime.Labelling;

/// <summary>
/// The rows to label and the CSV they become: the input's columns plus the label column, or (with an id column)
/// id, text and label. Every column name is checked against the file before any model is loaded.
/// </summary>
public sealed class LabelledTable
{
    private readonly DataTable _table;
    private readonly int _text;
    private readonly int? _id;

    private LabelledTable(DataTable table, int text, int? id, string labelColumn)
    {
        _table = table;
        _text = text;
        _id = id;
        LabelColumn = labelColumn;
    }

    public string LabelColumn { get; }
    public int Count => _table.Count;

    /// <summary>Reads the file (empty files and missing columns fail, listing the columns there are).</summary>
    public static LabelledTable Read(LabellingOptions options)
    {
        var table = DataTable.Read(options.DataPath);
        var text = table.ColumnIndex(options.TextColumn);
        int? id = options.IdColumn is null ? null : table.ColumnIndex(options.IdColumn);
        if (id == text) throw new PeftOnnxException($"--id-column '{options.IdColumn}' is the text column; name another column (columns: {ColumnList(table)})");
        if (string.IsNullOrEmpty(options.LabelColumn)) throw new PeftOnnxException("--label-column must not be empty");
        var kept = id is { } i ? new[] { table.Columns[i], table.Columns[text] } : table.Columns.ToArray();
        if (kept.Contains(options.LabelColumn, StringComparer.Ordinal))
            throw new PeftOnnxException($"{options.DataPath}: the output would hold column '{options.LabelColumn}' twice; name the generated column with --label-column (columns: {ColumnList(table)})");
        return new LabelledTable(table, text, id, options.LabelColumn);
    }

    /// <summary>The text column, in row order.</summary>
    public IReadOnlyList<string> Texts => _table.Rows.Select(r => r[_text]).ToList();

    /// <summary>The output header.</summary>
    public IReadOnlyList<string> Header => Project(_table.Columns.ToArray(), LabelColumn);

    /// <summary>The whole CSV: header, then each row with its label.</summary>
    public string ToCsv(IReadOnlyList<string> labels)
    {
        if (labels.Count != _table.Count) throw new ArgumentException($"{labels.Count} labels for {_table.Count} rows", nameof(labels));
        var text = new StringBuilder();
        CsvRecordWriter.Append(text, Header);
        for (int r = 0; r < _table.Count; r++) CsvRecordWriter.Append(text, Project(_table.Rows[r], labels[r]));
        return text.ToString();
    }

    private string[] Project(string[] row, string label) =>
        _id is { } id ? [row[id], row[_text], label] : [.. row, label];

    private static string ColumnList(DataTable table) => string.Join(", ", table.Columns.Select(c => $"'{c}'"));
}
