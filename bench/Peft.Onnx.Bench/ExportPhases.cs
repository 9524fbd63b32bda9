using System.Diagnostics;
using Peft.Onnx.Exporter;

namespace Peft.Onnx.Bench;

/// <summary>
/// Seconds, CPU seconds and peak RSS of each export phase (read + build, write, check session, check runs, the rest of
/// the flush, side files + rename), from
/// <see cref="ExportOptions.OnPhase"/>: VmHWM is read at each boundary and reset (/proc/self/clear_refs) where the
/// kernel allows, so each phase reports its own peak; <see cref="Peak"/> is the largest.
/// </summary>
public sealed class ExportPhases(Stopwatch clock)
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
        _phase = Name(next);
    }

    public void End()
    {
        Close();
        CpuSeconds = Cpu() - _startCpu;
    }

    private void Close()
    {
        double now = clock.Elapsed.TotalSeconds, cpu = Cpu();
        long peak = MemoryProbe.PeakRss();
        Peak = Math.Max(Peak, peak);
        _figures.Add(new Dictionary<string, object>
        {
            ["phase"] = _phase, ["seconds"] = Math.Round(now - _phaseStart, 3), ["cpu_seconds"] = Math.Round(cpu - _phaseCpu, 3),
            ["peak_rss_bytes"] = peak, ["peak_rss_mb"] = Math.Round(peak / 1048576.0, 1),
        });
        _phaseStart = now;
        _phaseCpu = cpu;
        MemoryProbe.ResetPeak();
    }

    private static double Cpu() => ProcessCpuClock.Seconds();

    /// <summary>The phase's name in the figures: "write", "check", "check_runs", "flush", "files".</summary>
    public static string Name(ExportPhase phase) => phase switch
    {
        ExportPhase.CheckRuns => "check_runs",
        _ => phase.ToString().ToLowerInvariant(),
    };
}
