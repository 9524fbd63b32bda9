using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Data;

public class DataTableTests
{
    private static string DataDir => Path.Combine(Paths.RepoRoot, "data");

    [Fact]
    public void Reads_the_twitter_complaints_csv_with_quoted_fields()
    {
        var table = DataTable.Read(Path.Combine(DataDir, "raft_twitter_complaints", "train.csv"));
        Assert.Equal(new[] { "Tweet text", "Label", "ID" }, table.Columns);
        Assert.Equal(50, table.Count);
        Assert.Equal("@KristaMariePark Thank you for your interest! If you decide to cancel, you can call Customer Care at 1-800-NYTIMES.", table.Rows[1][0]);
        Assert.All(table.Column("Label"), l => Assert.Contains(l, new[] { "complaint", "no complaint" }));
    }

    [Fact]
    public void Reads_the_phrasebank_jsonl_split()
    {
        var train = DataTable.Read(Path.Combine(DataDir, "financial_phrasebank", "split_hf_seed42", "train.jsonl"));
        var validation = DataTable.Read(Path.Combine(DataDir, "financial_phrasebank", "split_hf_seed42", "validation.jsonl"));
        Assert.Equal(2037, train.Count);
        Assert.Equal(227, validation.Count);
        Assert.Equal(new[] { "idx", "text", "label" }, train.Columns);
        Assert.Equal("The sales price was not disclosed .", train.Rows[0][1]);
        Assert.Equal("1501", train.Rows[0][0]);
    }

    [Theory]
    [InlineData("a,b\n1,\"x,\"\"y\"\"\nz\"\r\n2,w", 2, "x,\"y\"\nz")]
    [InlineData("a,b\n1,2\n\n3,4\n", 2, "2")]
    [InlineData("\uFEFFa,b\n1,2", 1, "2")]
    public void Csv_follows_rfc_4180(string text, int rows, string firstB)
    {
        var t = CsvFile.Parse(text, "x.csv");
        Assert.Equal(rows, t.Count);
        Assert.Equal(firstB, t.Rows[0][t.ColumnIndex("b")]);
    }

    [Theory]
    [InlineData("a,b\n1,\"2\n", "never closed")]
    [InlineData("a,b\n1,2,3\n", "record 2 has 3 fields")]
    [InlineData("", "empty")]
    [InlineData("a,a\n1,2", "appears twice")]
    [InlineData("a,b\n1,\"2\"x\n", "after a closing quote")]
    public void Bad_csv_is_refused(string text, string expected)
    {
        var ex = Assert.Throws<PeftOnnxException>(() => CsvFile.Parse(text, "bad.csv"));
        Assert.Contains("bad.csv", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Missing_column_lists_the_columns_there_are()
    {
        var table = DataTable.Read(Path.Combine(DataDir, "raft_twitter_complaints", "train.csv"));
        var ex = Assert.Throws<PeftOnnxException>(() => table.ColumnIndex("text"));
        Assert.Contains("no column 'text'", ex.Message);
        Assert.Contains("'Tweet text', 'Label', 'ID'", ex.Message);
    }

    [Theory]
    [InlineData("", "no data rows")]
    [InlineData("{\"a\":1}\n[1]\n", "line 2: expected a JSON object")]
    [InlineData("{\"a\":1}\n{\"a\":\n", "line 2: invalid JSON")]
    public void Bad_jsonl_is_refused(string text, string expected)
    {
        var path = Path.Combine(Paths.TempDir(), "bad.jsonl");
        File.WriteAllText(path, text);
        var ex = Assert.Throws<PeftOnnxException>(() => DataTable.Read(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Template_needs_the_text_placeholder()
    {
        Assert.Equal("Tweet text : hi Label : ", PromptTemplate.Parse("Tweet text : {text} Label : ").Format("hi"));
        var ex = Assert.Throws<PeftOnnxException>(() => PromptTemplate.Parse("Label : "));
        Assert.Contains("{text}", ex.Message);
    }
}
