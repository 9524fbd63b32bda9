using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Peft.Onnx.Tests.Reliability;

/// <summary>
/// When a kill is due: <see cref="Delay"/> after the first stderr line that contains <see cref="Line"/>, or after
/// <see cref="Appears"/> first holds for the child's process id (polled every millisecond), or after the start when
/// neither is given.
/// </summary>
public sealed record KillAt(TimeSpan Delay, string? Line = null, Func<int, bool>? Appears = null)
{
    public override string ToString() =>
        $"{Delay.TotalMilliseconds:F0} ms after {(Line is not null ? $"the line '{Line}'" : Appears is not null ? "the staging folder appeared" : "the start")}";
}

/// <summary>How a child run ended, with its stderr and when its lines came (ms after the start).</summary>
public sealed record ChildOutcome(bool Killed, int ExitCode, string Stderr, double Milliseconds, double? TriggerMilliseconds,
    IReadOnlyList<(double Ms, string Line)> Lines)
{
    /// <summary>Milliseconds from the start to the first line that contains <paramref name="text"/>, or null.</summary>
    public double? LineAt(string text) => Lines.FirstOrDefault(l => l.Line.Contains(text, StringComparison.Ordinal)) is { Line: not null } hit ? hit.Ms : null;
}

/// <summary>
/// Runs the built peft-onnx as a separate process, as a user would, and kills it with SIGKILL (Process.Kill on Linux,
/// the whole process tree) at a chosen moment, so it gets no chance to clean up: what it leaves is what kill -9 leaves.
/// </summary>
public static class ChildRun
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(5);

    public static ChildOutcome Run(IReadOnlyList<string> args, KillAt? kill = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "peft-onnx.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        // One intra-op thread: the runs being compared (killed, resumed, uninterrupted) do the same arithmetic in the same order.
        psi.Environment["OMP_NUM_THREADS"] = "1";
        psi.Environment["MKL_NUM_THREADS"] = "1";

        var clock = Stopwatch.StartNew();
        var lines = new List<(double, string)>();
        var stderr = new StringBuilder();
        var triggered = new ManualResetEventSlim(false);
        double? triggerMs = null;
        using var process = new Process { StartInfo = psi };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (lines)
            {
                lines.Add((clock.Elapsed.TotalMilliseconds, e.Data));
                stderr.AppendLine(e.Data);
                if (triggerMs is null && kill?.Line is { } line && e.Data.Contains(line, StringComparison.Ordinal))
                {
                    triggerMs = clock.Elapsed.TotalMilliseconds;
                    triggered.Set();
                }
            }
        };
        process.OutputDataReceived += (_, _) => { };
        process.Start();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();

        bool killed = false;
        if (kill is not null && WaitForTrigger(process, kill, triggered, clock, ref triggerMs))
        {
            var due = clock.Elapsed + kill.Delay;
            for (var left = due - clock.Elapsed; left > TimeSpan.Zero && !process.HasExited; left = due - clock.Elapsed)
                Thread.Sleep(left < TimeSpan.FromMilliseconds(1) ? left : TimeSpan.FromMilliseconds(1));
            if (!process.HasExited)
            {
                try
                {
                    process.Kill(entireProcessTree: true);
                    killed = true;
                }
                catch (InvalidOperationException) { } // exited in between
            }
        }
        if (!process.WaitForExit(Limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("peft-onnx " + string.Join(' ', args));
        }
        process.WaitForExit(); // drains the redirected streams
        lock (lines)
            return new ChildOutcome(killed, process.ExitCode, stderr.ToString(), clock.Elapsed.TotalMilliseconds, triggerMs, lines.ToList());
    }

    /// <summary>
    /// CPU time (user + system) of this process's finished children so far (getrusage RUSAGE_CHILDREN): what the child runs
    /// cost, independent of how loaded the machine is. Zero where the call is not available.
    /// </summary>
    public static TimeSpan ChildrenCpu()
    {
        try
        {
            var usage = new long[18];
            if (GetRusage(-1, usage) != 0) return TimeSpan.Zero;
            return TimeSpan.FromMicroseconds(usage[0] * 1e6 + usage[1] + usage[2] * 1e6 + usage[3]);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return TimeSpan.Zero; }
    }

    [DllImport("libc", EntryPoint = "getrusage")]
    private static extern int GetRusage(int who, [Out] long[] usage);

    /// <summary>Waits for the moment the delay counts from; false when the child exited first.</summary>
    private static bool WaitForTrigger(Process process, KillAt kill, ManualResetEventSlim triggered, Stopwatch clock, ref double? triggerMs)
    {
        if (kill.Line is not null)
        {
            while (!triggered.Wait(5))
                if (process.HasExited) return false;
            return true;
        }
        if (kill.Appears is { } appears)
        {
            while (!appears(process.Id))
            {
                if (process.HasExited) return false;
                Thread.Sleep(1);
            }
            triggerMs = clock.Elapsed.TotalMilliseconds;
        }
        return true;
    }
}
