using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>CPU time of the calling thread (clock_gettime(CLOCK_THREAD_CPUTIME_ID) on Linux; wall-clock time elsewhere).</summary>
internal static class ThreadCpuTime
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Seconds; public long Nanoseconds; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec time);

    private const int ThreadCpuClock = 3;
    private static readonly bool Available = OperatingSystem.IsLinux() && Probe();

    private static bool Probe()
    {
        try { return ClockGetTime(ThreadCpuClock, out _) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    public static TimeSpan Now()
    {
        if (!Available) return Stopwatch.GetElapsedTime(0);
        ClockGetTime(ThreadCpuClock, out var t);
        return TimeSpan.FromTicks(t.Seconds * TimeSpan.TicksPerSecond + t.Nanoseconds / 100);
    }
}
