using System.Diagnostics;
using System.Globalization;
using System.Numerics;

namespace Peft.Onnx.Bench;

/// <summary>Resident-set figures from /proc/self/status and a plain large-array read loop for the memory bandwidth.</summary>
public static class MemoryProbe
{
    /// <summary>VmHWM (peak RSS) of this process in bytes.</summary>
    public static long PeakRss() => Read("VmHWM:") ?? Process.GetCurrentProcess().PeakWorkingSet64;

    /// <summary>VmRSS (current RSS) in bytes.</summary>
    public static long CurrentRss() => Read("VmRSS:") ?? Process.GetCurrentProcess().WorkingSet64;

    /// <summary>
    /// Resets VmHWM to the current RSS (Linux >= 4.0: "5" into /proc/self/clear_refs), so the next <see cref="PeakRss"/>
    /// is the peak of what runs in between. False where the kernel refuses (then peaks are process-wide).
    /// </summary>
    public static bool ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    private static long? Read(string key)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>
    /// Read bandwidth in bytes/s: sums a <paramref name="bytes"/>-sized array of longs with all cores, best of
    /// <paramref name="passes"/> passes (the first touch, which faults the pages in, is not timed).
    /// </summary>
    public static double ReadBandwidth(long bytes, int passes = 5)
    {
        var data = new long[bytes / sizeof(long)];
        for (int i = 0; i < data.Length; i += 512) data[i] = i;
        int threads = Environment.ProcessorCount;
        int chunk = (data.Length / threads / Vector<long>.Count) * Vector<long>.Count;
        double best = 0;
        long sink = 0;
        for (int p = 0; p < passes; p++)
        {
            var clock = Stopwatch.StartNew();
            var sums = new long[threads];
            Parallel.For(0, threads, t =>
            {
                var span = data.AsSpan(t * chunk, t == threads - 1 ? data.Length - t * chunk : chunk);
                var acc = Vector<long>.Zero;
                int n = span.Length - span.Length % Vector<long>.Count;
                for (int i = 0; i < n; i += Vector<long>.Count) acc += new Vector<long>(span.Slice(i, Vector<long>.Count));
                sums[t] = Vector.Sum(acc);
            });
            var seconds = clock.Elapsed.TotalSeconds;
            sink += sums.Sum();
            best = Math.Max(best, data.Length * (double)sizeof(long) / seconds);
        }
        GC.KeepAlive(sink);
        return best;
    }
}
