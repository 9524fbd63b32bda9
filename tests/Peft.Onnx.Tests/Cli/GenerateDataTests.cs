using System.Text.Json;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>`generate --data`: a label for every row of a file, as `generate --prompt` gives it row by row.</summary>
public class GenerateDataTests
{
    private const string Model = "tiny-bloom-fin";
    private const string Template = "Tweet text : {text} Label : ";

    // Tweets as RAFT has them, plus the fields CSV must quote: commas, doubled quotes, line breaks (LF and CRLF).
    private static readonly string[] Tweets =
    [
        "@HMRCcustomers No this is my first job",
        "If I can't get my 3rd pair of @beatsbydre to work today, I'm done. Your next @Bose",
        "She said \"never again\", and \"\" twice",
        "line one\nline two, with a comma",
        "crlf\r\ninside and a trailing space ",
        "@EE terrible latency 200ms. Why is this.",
        "\"quoted from the start\"",
    ];

    private static string WriteCsv(string dir, string name = "tweets.csv")
    {
        var text = new System.Text.StringBuilder("Tweet text,ID\n");
        for (int i = 0; i < Tweets.Length; i++) text.Append('"').Append(Tweets[i].Replace("\"", "\"\"")).Append("\",").Append(50 + i).Append('\n');
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, text.ToString());
        return path;
    }

    private static CliRunner.Result Label(string data, string outPath, params string[] extra) =>
        CliRunner.Run(["generate", "--onnx", ExportedModels.Folder(Model), "--data", data, "--text-column", "Tweet text",
            "--out", outPath, "--device", "cpu", .. extra]);

    [Fact]
    public void Every_row_gets_the_label_generate_prompt_gives_and_fields_round_trip()
    {
        var dir = Paths.TempDir();
        try
        {
            var input = WriteCsv(dir);
            var outPath = Path.Combine(dir, "labels.csv");
            var r = Label(input, outPath, "--template", Template, "--max-new-tokens", "4", "--batch-size", "3", "--label-column", "Label", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("labelled 7/7 rows", r.Stderr);

            var written = CsvFile.Read(outPath);
            Assert.Equal(["Tweet text", "ID", "Label"], written.Columns);
            Assert.Equal(Tweets.Length, written.Count);
            Assert.Equal(Tweets, written.Column("Tweet text"));
            Assert.Equal(Enumerable.Range(50, Tweets.Length).Select(i => i.ToString()), written.Column("ID"));

            // Row by row, unbatched, through the Runtime's own text path: the same tokens (greedy), trimmed.
            var model = ExportedModels.Model(Model);
            var expected = Tweets.Select(t => model.Generate(GenerationRequest.FromText(Template.Replace("{text}", t), GenerationOptions.Greedy(4))).NewText![0].Trim()).ToList();
            Assert.Equal(expected, written.Column("Label"));
            Assert.Contains(expected, l => l.Length > 0);

            // And as a user checks one row: `generate --prompt` (the tweet with quotes and commas).
            var one = CliRunner.Run("generate", "--onnx", ExportedModels.Folder(Model), "--prompt", Template.Replace("{text}", Tweets[2]),
                "--max-new-tokens", "4", "--greedy", "--device", "cpu", "--json");
            Assert.True(one.ExitCode == 0, one.Stderr);
            using (var json = JsonDocument.Parse(one.Stdout))
                Assert.Equal(json.RootElement.GetProperty("new_text")[0].GetString()!.Trim(), written.Column("Label")[2]);

            using var summary = JsonDocument.Parse(r.Stdout);
            Assert.Equal(Tweets.Length, summary.RootElement.GetProperty("rows").GetInt32());
            Assert.Equal(Tweets.Length, summary.RootElement.GetProperty("label_counts").EnumerateObject().Sum(p => p.Value.GetInt32()));
            Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Jsonl_with_id_column_gives_id_text_label_in_input_order()
    {
        var dir = Paths.TempDir();
        try
        {
            var input = Path.Combine(dir, "tweets.jsonl");
            File.WriteAllLines(input, Tweets.Select((t, i) => JsonSerializer.Serialize(new Dictionary<string, object> { ["id"] = 50 + i, ["text"] = t, ["label"] = "Unlabeled" })));
            var outPath = Path.Combine(dir, "labels.csv");
            var r = CliRunner.Run("generate", "--onnx", ExportedModels.Folder(Model), "--data", input, "--text-column", "text", "--id-column", "id",
                "--label-column", "predicted", "--out", outPath, "--template", Template, "--max-new-tokens", "4", "--batch-size", "8", "--device", "cpu");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var written = CsvFile.Read(outPath);
            Assert.Equal(["id", "text", "predicted"], written.Columns);
            Assert.Equal(Enumerable.Range(50, Tweets.Length).Select(i => i.ToString()), written.Column("id"));
            Assert.Equal(Tweets, written.Column("text"));

            // One batch of 8 and batches of 3 give the same labels (every prompt is left-padded and masked).
            var model = ExportedModels.Model(Model);
            var expected = Tweets.Select(t => model.Generate(GenerationRequest.FromText(Template.Replace("{text}", t), GenerationOptions.Greedy(4))).NewText![0].Trim());
            Assert.Equal(expected, written.Column("predicted"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("missing-column", "no column 'Tweet' (columns: 'Tweet text', 'ID')")]
    [InlineData("no-placeholder", "has no {text} placeholder")]
    [InlineData("empty-file", "the file is empty")]
    [InlineData("missing-out-folder", "not found")]
    [InlineData("label-column-clash", "column 'ID' twice")]
    [InlineData("sampling", "--temperature belongs to --prompt / --input-ids mode")]
    public void Bad_input_is_one_line_and_writes_nothing(string kind, string message)
    {
        var dir = Paths.TempDir();
        try
        {
            var input = WriteCsv(dir);
            var outPath = Path.Combine(dir, "labels.csv");
            string[] args = kind switch
            {
                "missing-column" => ["generate", "--onnx", dir, "--data", input, "--text-column", "Tweet", "--out", outPath],
                "no-placeholder" => ["generate", "--onnx", dir, "--data", input, "--text-column", "Tweet text", "--template", "Tweet text : Label : ", "--out", outPath],
                "empty-file" => ["generate", "--onnx", dir, "--data", EmptyFile(dir), "--text-column", "Tweet text", "--out", outPath],
                "missing-out-folder" => ["generate", "--onnx", dir, "--data", input, "--text-column", "Tweet text", "--out", Path.Combine(dir, "nope", "labels.csv")],
                "label-column-clash" => ["generate", "--onnx", dir, "--data", input, "--text-column", "Tweet text", "--label-column", "ID", "--out", outPath],
                _ => ["generate", "--onnx", dir, "--data", input, "--text-column", "Tweet text", "--temperature", "0.7", "--out", outPath],
            };
            var r = CliRunner.Run(args);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains(message, r.Stderr);
            Assert.Single(r.Stderr.Trim().Split('\n'));
            Assert.False(File.Exists(outPath));
        }
        finally { Directory.Delete(dir, true); }
    }

    private static string EmptyFile(string dir)
    {
        var path = Path.Combine(dir, "empty.csv");
        File.WriteAllText(path, "");
        return path;
    }
}
