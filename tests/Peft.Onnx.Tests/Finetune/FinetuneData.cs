using Peft.Onnx.Tests.Support;

namespace Peft.Onnx.Tests.Finetune;

/// <summary>Small slices of financial_phrasebank (split_hf_seed42) written to a temp folder, so runs stay fast.</summary>
internal static class FinetuneData
{
    public static string Bloom => Path.Combine(Paths.Models, "tiny-bloom-fin");
    public static string T5 => Path.Combine(Paths.Models, "tiny-t5-fin");
    public static string Split => Path.Combine(Paths.RepoRoot, "data", "financial_phrasebank", "split_hf_seed42");

    public static string[] Lines(string file, int count) =>
        File.ReadLines(Path.Combine(Split, file)).Where(l => l.Trim().Length > 0).Take(count).ToArray();

    /// <summary>Writes the first <paramref name="train"/> training rows and <paramref name="validation"/> validation rows.</summary>
    public static (string Dir, string Train, string Validation) Write(int train = 24, int validation = 16)
    {
        var dir = Paths.TempDir("peft-onnx-finetune");
        var t = Path.Combine(dir, "train.jsonl");
        var v = Path.Combine(dir, "validation.jsonl");
        File.WriteAllLines(t, Lines("train.jsonl", train));
        File.WriteAllLines(v, Lines("validation.jsonl", validation));
        return (dir, t, v);
    }
}
