using System.Diagnostics;
using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Exporter;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `export`: compiles a Hugging Face model (+ a PEFT adapter) into a self-contained ONNX folder (graphs, external
/// data, genai_config.json, config and tokenizer files). The folder appears complete and checked with ONNX Runtime,
/// or not at all; a non-empty --out is refused unless --force. Seconds and peak RSS go to stderr (or --json).
/// </summary>
public sealed class ExportCommand : ICommand
{
    public string Name => "export";
    public string Summary => "compile base model + adapter into ONNX (LoRA/IA3 merged, or --no-merge), checked with ONNX Runtime";

    public int Run(ArgReader args)
    {
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder");
        var adapterDir = args.OptionalExistingDir("adapter");
        var outDir = args.Required("out", "the folder to write the ONNX export to");
        var noMerge = args.Flag("no-merge");
        var dtype = args.Choice("dtype", "fp32", "fp32", "fp16");
        var force = args.Flag("force");
        var json = args.Flag("json");
        args.EnsureAllUsed();
        if (noMerge && adapterDir is null) throw new PeftOnnxException("export: --no-merge needs --adapter (it keeps the adapter's LoRA branches beside the base weights)");

        var options = new ExportOptions
        {
            Merge = !noMerge,
            DType = dtype == "fp16" ? ExportDType.Fp16 : ExportDType.Fp32,
            Overwrite = force,
        };
        var clock = Stopwatch.StartNew();
        var phases = new ExportPhases(clock);
        var result = OnnxExport.Export(baseDir, adapterDir, outDir, options with { OnPhase = phases.Begin });
        var seconds = clock.Elapsed.TotalSeconds;
        phases.End();
        var peak = phases.Peak;
        var files = Directory.EnumerateFiles(result.OutDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        long bytes = result.Models.Sum(m => m.ModelBytes + m.DataBytes);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["out"] = result.OutDir,
                ["models"] = result.Models.Select(m => Path.GetFileName(m.ModelPath)).ToList(),
                ["files"] = files,
                ["bytes"] = bytes,
                ["dtype"] = dtype,
                ["merged"] = adapterDir is not null && !noMerge,
                ["adapter"] = adapterDir,
                ["checked_with_ort"] = true,
                ["seconds"] = Math.Round(seconds, 3),
                ["cpu_seconds"] = Math.Round(phases.CpuSeconds, 3),
                ["peak_rss_bytes"] = peak,
                ["peak_rss_mb"] = Math.Round(peak / 1048576.0, 1),
                ["phases"] = phases.Figures,
            }));
        }
        else
        {
            Console.WriteLine($"exported {string.Join(" + ", result.Models.Select(m => Path.GetFileName(m.ModelPath)))} ({bytes / 1048576.0:F1} MB, {dtype}{(adapterDir is null ? "" : noMerge ? ", adapter unmerged" : ", adapter merged")}) to {result.OutDir}, checked with ONNX Runtime");
        }
        Console.Error.WriteLine($"export: {seconds:F2} s ({phases.CpuSeconds:F2} s CPU), peak RSS {peak / 1048576.0:F1} MB; "
            + string.Join(", ", phases.Figures.Select(f => $"{f["phase"]} {f["seconds"]} s, peak {f["peak_rss_mb"]} MB")));
        return 0;
    }

    /// <summary>Peak resident set size of this process: VmHWM from /proc/self/status, else Process.PeakWorkingSet64.</summary>
    public static long PeakRssBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64;
    }
}

/// <summary>
/// Seconds, CPU seconds and peak RSS of each export phase (read + build, write, check), from
/// <see cref="ExportOptions.OnPhase"/>: VmHWM is read at each boundary and reset (/proc/self/clear_refs) where the
/// kernel allows, so each phase reports its own peak; <see cref="Peak"/> is the largest.
/// </summary>
internal sealed class ExportPhases(Stopwatch clock)
{
    private readonly List<Dictionary<string, object>> _figures = [];
    private readonly double _startCpu = Cpu();
    private string _phase = "read";
    private double _phaseStart;
    private double _phaseCpu = Cpu();

    public IReadOnlyList<Dictionary<string, object>> Figures => _figures;
    public long Peak { get; private set; }
    public double CpuSeconds { get; private set; }

    public void Begin(ExportPhase next)
    {
        Close();
        _phase = next.ToString().ToLowerInvariant();
    }

    public void End()
    {
        Close();
        CpuSeconds = Cpu() - _startCpu;
    }

    private void Close()
    {
        double now = clock.Elapsed.TotalSeconds, cpu = Cpu();
        long peak = ExportCommand.PeakRssBytes();
        Peak = Math.Max(Peak, peak);
        _figures.Add(new Dictionary<string, object>
        {
            ["phase"] = _phase, ["seconds"] = Math.Round(now - _phaseStart, 3), ["cpu_seconds"] = Math.Round(cpu - _phaseCpu, 3),
            ["peak_rss_bytes"] = peak, ["peak_rss_mb"] = Math.Round(peak / 1048576.0, 1),
        });
        _phaseStart = now;
        _phaseCpu = cpu;
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static double Cpu()
    {
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime.TotalSeconds;
    }
}
