using System.Text;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>The data-set readers on mutated copies of the real data sets (data/**): CSV and JSON Lines.</summary>
public class DataFuzzTests(ITestOutputHelper output)
{
    /// <summary>Small real files whole, and the first lines of the large ones (so 10,000 parses stay fast).</summary>
    private static List<byte[]> DataSeeds(string pattern)
    {
        var seeds = new List<byte[]>();
        foreach (var path in Directory.EnumerateFiles(Path.Combine(Paths.RepoRoot, "data"), pattern, SearchOption.AllDirectories)
                     .Concat(Directory.EnumerateFiles(Paths.Fixtures, pattern, SearchOption.AllDirectories))
                     .Order(StringComparer.Ordinal))
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length <= 16 * 1024) { seeds.Add(bytes); continue; }
            var text = Encoding.UTF8.GetString(bytes);
            seeds.Add(Encoding.UTF8.GetBytes(string.Join('\n', text.Split('\n').Take(40)) + "\n"));
        }
        return seeds;
    }

    private static void Touch(DataTable table)
    {
        foreach (var c in table.Columns) _ = table.Column(c);
        _ = table.Select(Enumerable.Range(0, table.Count).Reverse()).Count;
    }

    [Fact]
    public void Fuzz_csv()
    {
        var seeds = DataSeeds("*.csv");
        Assert.NotEmpty(seeds);
        var dir = Seeds.TempDir("csv");
        try
        {
            var path = Path.Combine(dir, "data.csv");
            new FuzzRunner("csv", output).Run(
                (r, i) =>
                {
                    var bytes = i % 500 == 7 ? HugeField(seeds.Pick(r), r)
                        : r.Next(4) == 0 ? Mutator.Bytes(seeds.Pick(r), r) : Mutator.Text(seeds.Pick(r), r);
                    bool viaFile = i % 2 == 1;
                    if (viaFile) File.WriteAllBytes(path, bytes);
                    return (bytes, viaFile);
                },
                input =>
                {
                    var table = input.viaFile ? DataTable.Read(path) : CsvFile.Parse(Encoding.UTF8.GetString(input.bytes), "data.csv");
                    Touch(table);
                },
                input => input.bytes.Length * 4L);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Fuzz_jsonl()
    {
        var seeds = DataSeeds("*.jsonl");
        Assert.NotEmpty(seeds);
        var dir = Seeds.TempDir("jsonl");
        try
        {
            var path = Path.Combine(dir, "data.jsonl");
            new FuzzRunner("jsonl", output).Run(
                (r, i) =>
                {
                    var seed = seeds.Pick(r);
                    var bytes = r.Next(3) switch
                    {
                        0 => Mutator.Text(seed, r),
                        1 => Mutator.Bytes(seed, r),
                        _ when i % 500 == 257 => SparseKeys(r),
                        _ => JsonLine(seed, r, huge: i % 500 == 7),
                    };
                    File.WriteAllBytes(path, bytes);
                    return bytes;
                },
                bytes =>
                {
                    var table = ReadEither(path, bytes);
                    Touch(table);
                },
                bytes => bytes.Length * 4L);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static DataTable ReadEither(string path, byte[] bytes) =>
        bytes.Length % 2 == 0 ? DataTable.Read(path) : JsonLinesFile.Read(path);

    /// <summary>A 10 MB field (quoted or not, or a quote never closed), or 100,000 columns, inserted into a real file.</summary>
    private static byte[] HugeField(byte[] seed, Random r)
    {
        var text = Encoding.UTF8.GetString(seed);
        string payload = r.Next(4) switch
        {
            0 => new string('x', 10 * 1024 * 1024),
            1 => "\"" + new string('y', 10 * 1024 * 1024) + "\"",
            2 => "\"" + string.Concat(Enumerable.Repeat("a\"\"\n", 1024 * 1024)),
            _ => string.Concat(Enumerable.Repeat("c,", 100_000)),
        };
        int at = text.IndexOf('\n') + 1;
        return Encoding.UTF8.GetBytes(text[..at] + payload + text[at..]);
    }

    /// <summary>Many short records that share no key: a small file whose table (rows x columns) would be huge.</summary>
    private static byte[] SparseKeys(Random r)
    {
        var text = new StringBuilder();
        int lines = 20_000 + r.Next(20_000);
        for (int k = 0; k < lines; k++) text.Append("{\"k").Append(k).Append("\": ").Append(k).Append("}\n");
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>One line of the file mutated as JSON (type confusion, NaN, duplicate keys, nesting).</summary>
    private static byte[] JsonLine(byte[] seed, Random r, bool huge)
    {
        var lines = Encoding.UTF8.GetString(seed).Split('\n');
        int at = r.Next(lines.Length);
        var line = Encoding.UTF8.GetBytes(lines[at]);
        lines[at] = Encoding.UTF8.GetString(huge ? Mutator.HugeJson(line, r) : Mutator.Json(line, r));
        return Encoding.UTF8.GetBytes(string.Join('\n', lines));
    }
}
