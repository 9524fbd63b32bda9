using System.Diagnostics;
using System.Text.Json;

namespace Peft.Onnx.Bench;

/// <summary>
/// ORT GenAI on the same exported folder, in its own process (bench/GenAiBaseline: Microsoft.ML.OnnxRuntimeGenAI pulls the
/// CPU ONNX Runtime, which must not share our output). Built on demand into a cache folder under the temp folder.
/// </summary>
public sealed class GenAiBaseline
{
    private readonly string _dll;

    private GenAiBaseline(string dll) => _dll = dll;

    /// <summary>Builds (or reuses) the baseline; null with <paramref name="note"/> saying why when it cannot.</summary>
    public static GenAiBaseline? Prepare(bool allowBuild, TextWriter log, out string? note)
    {
        note = null;
        var project = FindProject();
        if (project == null) { note = "bench/GenAiBaseline not found above the current folder or the executable"; return null; }
        var outDir = Path.Combine(Path.GetTempPath(), "peft-onnx-genai-baseline");
        var dll = Path.Combine(outDir, "GenAiBaseline.dll");
        var newest = Directory.EnumerateFiles(project, "*.cs*").Select(File.GetLastWriteTimeUtc).Max();
        if (File.Exists(dll) && File.GetLastWriteTimeUtc(dll) >= newest) return new GenAiBaseline(dll);
        if (!allowBuild) { note = "not built yet (--quick does not build it; run bench without --quick once)"; return null; }
        log.WriteLine($"bench: building {project} -> {outDir}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "build", project, "-c", "Release", "-o", outDir, "--nologo", "-v", "q" }) psi.ArgumentList.Add(a);
        var (code, stdout, stderr) = Run(psi, TimeSpan.FromMinutes(5));
        if (code != 0 || !File.Exists(dll))
        {
            var line = (stdout + stderr).Split('\n').FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase))?.Trim();
            note = $"dotnet build bench/GenAiBaseline failed (exit {code}): {line ?? "no error line"}";
            return null;
        }
        File.SetLastWriteTimeUtc(dll, DateTime.UtcNow);
        return new GenAiBaseline(dll);
    }

    /// <summary>tokens/s and TTFT of a greedy run; null with a note when GenAI cannot serve the folder.</summary>
    public JsonElement? Run(string dir, int promptLength, int newTokens, int batch, int repeats, out string? note)
    {
        note = null;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { _dll, dir, promptLength.ToString(), newTokens.ToString(), batch.ToString(), repeats.ToString() }) psi.ArgumentList.Add(a);
        var (code, stdout, stderr) = Run(psi, TimeSpan.FromMinutes(5));
        if (code != 0) { note = $"GenAI failed (exit {code}): {stderr.Trim().Split('\n')[0]}"; return null; }
        try { return JsonDocument.Parse(stdout).RootElement.Clone(); }
        catch (JsonException) { note = $"GenAI printed no JSON: {stdout.Trim().Split('\n')[0]}"; return null; }
    }

    /// <summary>
    /// One batch-1 request per adapter file through GenAI's Adapters API, one after another (GenAI activates one adapter
    /// per generator): tokens/s over all requests, each request's new tokens and first-step logits; null with a note
    /// when GenAI cannot serve them.
    /// </summary>
    public JsonElement? RunAdapters(string dir, int promptLength, int newTokens, int repeats, IReadOnlyList<string> adapterFiles, out string? note)
    {
        note = null;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { _dll, "--adapters", dir, promptLength.ToString(), newTokens.ToString(), repeats.ToString() }.Concat(adapterFiles)) psi.ArgumentList.Add(a);
        var (code, stdout, stderr) = Run(psi, TimeSpan.FromMinutes(10));
        if (code != 0) { note = $"GenAI failed (exit {code}): {stderr.Trim().Split('\n')[0]}"; return null; }
        try { return JsonDocument.Parse(stdout).RootElement.Clone(); }
        catch (JsonException) { note = $"GenAI printed no JSON: {stdout.Trim().Split('\n')[0]}"; return null; }
    }

    private static (int, string, string) Run(ProcessStartInfo psi, TimeSpan timeout)
    {
        try
        {
            using var p = Process.Start(psi)!;
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeout)) { p.Kill(true); return (-1, o.Result, "timed out"); }
            return (p.ExitCode, o.Result, e.Result);
        }
        catch (System.ComponentModel.Win32Exception ex) { return (-1, "", ex.Message); }
    }

    private static string? FindProject()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            {
                var p = Path.Combine(d.FullName, "bench", "GenAiBaseline");
                if (File.Exists(Path.Combine(p, "GenAiBaseline.csproj"))) return p;
            }
        return null;
    }
}
