using System.Diagnostics;
using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Families;

namespace Peft.Onnx.Bench;

/// <summary>
/// One export of the random checkpoint in a child `peft-onnx export --json` (its own process, so its own peak RSS):
/// seconds (the child's own clock, ORT check included), the child's wall time, CPU seconds, peak RSS, the ratio to the
/// copy time (the mean of the copies right before and right after it), and the child's per-phase figures (<see cref="ExportPhases"/>).
/// </summary>
public sealed record ExportVariant(string Name, string DType, bool LoraMerged, double Seconds, double WallSeconds, double CpuSeconds,
    long PeakRssBytes, double OverCopy, JsonElement Phases, double CopySeconds)
{
    /// <summary>Each run's export seconds over its own copy time, in run order (<see cref="OverCopy"/> is their mean).</summary>
    public IReadOnlyList<double> RunRatios { get; init; } = [];
}

/// <summary>Export of a random BLOOM checkpoint (fp32, fp32 + merged LoRA, fp16) vs copying the same bytes.</summary>
public sealed record ExportFigures(string Config, int HiddenSize, int Layers, int Vocab, long CheckpointBytes, double ExportSeconds, double ExportWallSeconds,
    long ExportPeakRssBytes, double CopySeconds, double ExportOverCopy, double WriteCheckpointSeconds, IReadOnlyList<ExportVariant> Variants,
    double CopySecondsBefore, double CopySecondsAfter, long LargestTensorBytes, int LoraRank);

public static class ExportBench
{
    public const int LoraRank = 8;

    /// <summary>Runs of every export variant by default (interleaved: all variants, then all again).</summary>
    public const int Rounds = 2;

    private static readonly (string Name, string DType, bool WithAdapter)[] Variants = [("fp32", "fp32", false), ("fp32+lora", "fp32", true), ("fp16", "fp16", false)];

    private sealed record ExportRun(string Name, string DType, bool Merged, double Seconds, double Wall, double Cpu, long Peak, JsonElement Phases, double CopySeconds);

    public static ExportFigures Run(string realConfig, string label, int? hidden, int? layers, int? heads, int? vocab, string work, TextWriter log, int rounds = Rounds)
    {
        var config = RandomCheckpoint.BloomConfig(realConfig, hidden, layers, heads, vocab);
        var dir = Path.Combine(work, "ckpt-" + label);
        var adapter = Path.Combine(work, "lora-" + label);
        var clock = Stopwatch.StartNew();
        long bytes = RandomCheckpoint.WriteAny(dir, config);
        RandomCheckpoint.WriteBloomLora(adapter, config, LoraRank);
        var writeSeconds = clock.Elapsed.TotalSeconds;
        log.WriteLine($"bench: wrote a random {label} checkpoint ({bytes / 1048576.0:F0} MB) and a rank-{LoraRank} LoRA on every linear module in {writeSeconds:F1} s");
        try
        {
            // a copy right before each export and one after the last: each export is compared with the copies beside it
            // (the disk and the page cache drift by tens of percent over a minute on a shared machine); every variant
            // runs `rounds` times and its figures are the means over those runs (peak RSS: the highest)
            var copies = new List<double> { Copy(dir, work, label) };
            var runs = new List<ExportRun>();
            for (int round = 0; round < rounds; round++)
                foreach (var (name, dtype, withAdapter) in Variants)
                {
                    if (runs.Count > 0) copies.Add(Copy(dir, work, label));
                    var outDir = Path.Combine(work, "export-" + label);
                    var args = new List<string> { "export", "--base", dir, "--out", outDir, "--force", "--json", "--dtype", dtype };
                    if (withAdapter) args.AddRange(["--adapter", adapter]);
                    var child = RunChild(name, [.. args]);
                    runs.Add(new ExportRun(name, dtype, withAdapter, child.Seconds, child.WallSeconds, child.CpuSeconds, child.PeakRssBytes, child.Phases, copies[^1]));
                    log.WriteLine($"bench: export {name}: {runs[^1].Seconds:F1} s ({runs[^1].Cpu:F1} s CPU), peak RSS {runs[^1].Peak / 1048576.0:F0} MB (copy before it {copies[^1]:F1} s)");
                    Directory.Delete(outDir, true);
                }
            copies.Add(Copy(dir, work, label));
            double copyBefore = copies[0], copyAfter = copies[^1], copySeconds = copies.Average();
            log.WriteLine($"bench: copying the checkpoint took {string.Join(", ", copies.Select(c => c.ToString("F1")))} s around the exports");
            // run i sits between copies i and i + 1
            var paired = runs.Select((r, i) => r with { CopySeconds = (copies[i] + copies[i + 1]) / 2 }).ToList();
            var variants = paired.GroupBy(r => r.Name).Select(g => new ExportVariant(g.Key, g.First().DType, g.First().Merged, g.Average(r => r.Seconds),
                g.Average(r => r.Wall), g.Average(r => r.Cpu), g.Max(r => r.Peak), g.Average(r => r.Seconds / r.CopySeconds), g.Last().Phases,
                g.Average(r => r.CopySeconds)) { RunRatios = g.Select(r => r.Seconds / r.CopySeconds).ToList() }).ToList();
            var fp32 = variants[0];
            int h = config["hidden_size"]!.GetValue<int>(), v = config["vocab_size"]!.GetValue<int>();
            return new ExportFigures(label, h, config["n_layer"]!.GetValue<int>(), v, bytes, fp32.Seconds, fp32.WallSeconds, fp32.PeakRssBytes,
                copySeconds, fp32.OverCopy, writeSeconds, variants, copyBefore, copyAfter, (long)v * h * 4, LoraRank);
        }
        finally
        {
            Directory.Delete(dir, true);
            Directory.Delete(adapter, true);
        }
    }

    /// <summary>
    /// One `peft-onnx export --json ...` in a child process (its own peak RSS): the child's own seconds (ORT check
    /// included), its wall time, CPU seconds, peak RSS and per-phase figures.
    /// </summary>
    public static ExportChildFigures RunChild(string name, params string[] args)
    {
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(SelfProcess(args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        var wall = clock.Elapsed.TotalSeconds;
        if (p.ExitCode != 0) throw new PeftOnnxException($"bench: the {name} export child failed (exit {p.ExitCode}): {stderr.Result.Trim().Split('\n')[^1]}");
        var json = JsonDocument.Parse(stdout.Result).RootElement;
        return new ExportChildFigures(json.GetProperty("seconds").GetDouble(), wall, json.GetProperty("cpu_seconds").GetDouble(),
            json.GetProperty("peak_rss_bytes").GetInt64(), json.GetProperty("phases").Clone());
    }

    /// <summary>Seconds to copy the checkpoint's safetensors file and fsync the copy (what writing the same bytes costs).</summary>
    public static double Copy(string dir, string work, string label)
    {
        var copy = Path.Combine(work, "copy-" + label + ".safetensors");
        var clock = Stopwatch.StartNew();
        File.Copy(Path.Combine(dir, "model.safetensors"), copy, true);
        using (var f = new FileStream(copy, FileMode.Open, FileAccess.ReadWrite)) f.Flush(true);
        var seconds = clock.Elapsed.TotalSeconds;
        File.Delete(copy);
        return seconds;
    }

    /// <summary>This executable again (apphost, or `dotnet peft-onnx.dll`) with the given arguments.</summary>
    public static ProcessStartInfo SelfProcess(params string[] args)
    {
        var host = Environment.ProcessPath ?? "dotnet";
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") psi.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }
}
