using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Peft.Onnx.Bench;

/// <summary>
/// CPU time of this process, all threads. Process.TotalProcessorTime reads /proc in clock ticks (10 ms), coarser than a
/// tiny model's whole generation; Linux's CLOCK_PROCESS_CPUTIME_ID counts nanoseconds.
/// </summary>
public static class ProcessCpuClock
{
    private const int ClockProcessCpuTimeId = 2;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    public static double Seconds()
    {
        if (OperatingSystem.IsLinux() && ClockGetTime(ClockProcessCpuTimeId, out var t) == 0) return t.Seconds + t.Nanoseconds * 1e-9;
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime.TotalSeconds;
    }
}
