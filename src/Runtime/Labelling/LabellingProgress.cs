using System.Diagnostics;

namespace Peft.Onnx.Runtime.Labelling;

/// <summary>
/// Progress of a long labelling run on stderr (stdout stays free for --json): one line every few seconds with rows
/// done, rows per second and the time left, so a redirected log stays short.
/// </summary>
public sealed class LabellingProgress(TextWriter writer, TimeSpan every)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _last = TimeSpan.Zero;

    public TimeSpan Elapsed => _clock.Elapsed;

    public void Report(int done, int total)
    {
        var now = _clock.Elapsed;
        if (done < total && now - _last < every) return;
        _last = now;
        double rate = done / Math.Max(now.TotalSeconds, 1e-9);
        var left = rate > 0 ? TimeSpan.FromSeconds((total - done) / rate) : TimeSpan.Zero;
        writer.WriteLine($"labelled {done}/{total} rows ({rate:F1} rows/s, {now.TotalSeconds:F1} s{(done < total ? $", about {left.TotalSeconds:F0} s left" : "")})");
    }
}
