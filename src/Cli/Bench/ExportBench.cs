using System.Diagnostics;
using System.Text.Json;
using Peft.Onnx.Core;

namespace Peft.Onnx.Cli.Bench;

/// <summary>Export of a random BLOOM checkpoint in a child `peft-onnx export` (its own peak RSS) vs copying the same bytes.</summary>
public sealed record ExportFigures(string Config, int HiddenSize, int Layers, int Vocab, long CheckpointBytes, double ExportSeconds, double ExportWallSeconds,
    long ExportPeakRssBytes, double CopySeconds, double ExportOverCopy, double WriteCheckpointSeconds);

public static class ExportBench
{
    public static ExportFigures Run(string realConfig, string label, int? hidden, int? layers, int? heads, int? vocab, string work, TextWriter log)
    {
        var config = RandomCheckpoint.BloomConfig(realConfig, hidden, layers, heads, vocab);
        var dir = Path.Combine(work, "ckpt-" + label);
        var clock = Stopwatch.StartNew();
        long bytes = RandomCheckpoint.WriteBloom(dir, config);
        var writeSeconds = clock.Elapsed.TotalSeconds;
        log.WriteLine($"bench: wrote a random {label} checkpoint ({bytes / 1048576.0:F0} MB) in {writeSeconds:F1} s");

        var outDir = Path.Combine(work, "export-" + label);
        var psi = SelfProcess("export", "--base", dir, "--out", outDir, "--force", "--json");
        clock.Restart();
        using (var p = Process.Start(psi)!)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            var wall = clock.Elapsed.TotalSeconds;
            if (p.ExitCode != 0) throw new PeftOnnxException($"bench: the export child failed (exit {p.ExitCode}): {stderr.Result.Trim().Split('\n')[^1]}");
            var json = JsonDocument.Parse(stdout.Result).RootElement;
            var exportSeconds = json.GetProperty("seconds").GetDouble();
            var peak = json.GetProperty("peak_rss_bytes").GetInt64();

            var copy = Path.Combine(work, "copy-" + label + ".safetensors");
            clock.Restart();
            File.Copy(Path.Combine(dir, "model.safetensors"), copy, true);
            using (var f = new FileStream(copy, FileMode.Open, FileAccess.ReadWrite)) f.Flush(true);
            var copySeconds = clock.Elapsed.TotalSeconds;
            File.Delete(copy);
            Directory.Delete(outDir, true);
            Directory.Delete(dir, true);
            return new ExportFigures(label, config["hidden_size"]!.GetValue<int>(), config["n_layer"]!.GetValue<int>(), config["vocab_size"]!.GetValue<int>(),
                bytes, exportSeconds, wall, peak, copySeconds, exportSeconds / copySeconds, writeSeconds);
        }
    }

    /// <summary>This executable again (apphost, or `dotnet peft-onnx.dll`) with the given arguments.</summary>
    public static ProcessStartInfo SelfProcess(params string[] args)
    {
        var host = Environment.ProcessPath ?? "dotnet";
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") psi.ArgumentList.Add(typeof(ExportBench).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }
}
