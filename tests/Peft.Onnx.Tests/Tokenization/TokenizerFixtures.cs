using System.Text.Json;

namespace Peft.Onnx.Tests.Tokenization;

/// <summary>One line of a reference expected.jsonl: what transformers gave for a text.</summary>
public sealed record ExpectedEncoding(string Text, int[] Ids, int[] IdsNoSpecial, string Decoded);

/// <summary>Finds tests/fixtures/tokenizers by walking up from the test binary, and reads its files.</summary>
internal static class TokenizerFixtures
{
    public static string Root { get; } = FindRoot();

    public static string Dir(string name) => Path.Combine(Root, name);

    public static IReadOnlyList<ExpectedEncoding> Expected(string name) =>
        File.ReadLines(Path.Combine(Root, name, "expected.jsonl"))
            .Where(line => line.Length > 0)
            .Select(line =>
            {
                var e = JsonDocument.Parse(line).RootElement;
                int[] Ids(string key) => e.GetProperty(key).EnumerateArray().Select(v => v.GetInt32()).ToArray();
                return new ExpectedEncoding(e.GetProperty("text").GetString()!, Ids("ids"), Ids("ids_no_special"),
                    e.GetProperty("decoded").GetString()!);
            })
            .ToList();

    public static IReadOnlyList<string> PhrasebankSentences() =>
        File.ReadLines(Path.Combine(Root, "financial_phrasebank_sample.jsonl"))
            .Where(line => line.Length > 0)
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("text").GetString()!)
            .ToList();

    /// <summary>A new empty folder under the system temp folder.</summary>
    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "peft-onnx-tokenizer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A temp folder holding copies of the named files of a fixture folder.</summary>
    public static string CopyOf(string name, params string[] files)
    {
        var dir = TempDir();
        foreach (var file in files) File.Copy(Path.Combine(Root, name, file), Path.Combine(dir, file));
        return dir;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures", "tokenizers");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("tests/fixtures/tokenizers not found above " + AppContext.BaseDirectory);
    }
}
