using System.Diagnostics;
using Peft.Onnx.Bench;

namespace Peft.Onnx.Bench.Load;

/// <summary>
/// Samples RSS, the managed heap, GC counts and the request counters every interval on its own thread (not the thread
/// pool, which the load keeps busy), from the moment it starts until <see cref="Stop"/>, which takes a last sample.
/// With <c>forceGc</c> a full collection runs (and finalizers finish) before each reading, so RSS and the heap show what
/// the process holds rather than how far the GC has let garbage pile up: its gen0 budget follows the reported L3 size,
/// which on some virtual machines is hundreds of MB, more than a run of minutes allocates.
/// </summary>
public sealed class ResourceSampler : IDisposable
{
    private readonly LoadCounters _counters;
    private readonly Stopwatch _clock;
    private readonly TimeSpan _interval;
    private readonly bool _forceGc;
    private readonly Action<LoadSample>? _onSample;
    private readonly ManualResetEventSlim _stop = new();
    private readonly List<LoadSample> _samples = [];
    private readonly Thread _thread;
    private long _lastTokens;
    private double _lastSeconds;

    public ResourceSampler(LoadCounters counters, Stopwatch clock, TimeSpan interval, bool forceGc, Action<LoadSample>? onSample = null)
    {
        _forceGc = forceGc;
        _counters = counters;
        _clock = clock;
        _interval = interval;
        _onSample = onSample;
        _thread = new Thread(Loop) { IsBackground = true, Name = "load-sampler" };
    }

    public void Start()
    {
        Take();
        _thread.Start();
    }

    /// <summary>Stops sampling after one last sample and returns the series.</summary>
    public IReadOnlyList<LoadSample> Stop()
    {
        _stop.Set();
        _thread.Join();
        Take();
        return _samples;
    }

    private void Loop()
    {
        var next = _clock.Elapsed + _interval;
        while (!_stop.Wait(Max(TimeSpan.Zero, next - _clock.Elapsed)))
        {
            Take();
            // a sampler woken late (busy cores) skips the ticks it missed instead of taking them back to back
            next = Max(next + _interval, _clock.Elapsed + _interval / 2);
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private void Take()
    {
        if (_forceGc)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        double seconds = _clock.Elapsed.TotalSeconds;
        long tokens = _counters.Tokens;
        double rate = seconds > _lastSeconds ? (tokens - _lastTokens) / (seconds - _lastSeconds) : 0;
        (_lastTokens, _lastSeconds) = (tokens, seconds);
        var sample = new LoadSample(Math.Round(seconds, 3), MemoryProbe.CurrentRss(), GC.GetTotalMemory(false),
            GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), _counters.Completed, _counters.Cancelled, tokens,
            Math.Round(rate, 1), _counters.InFlight, ThreadPool.ThreadCount);
        _samples.Add(sample);
        _onSample?.Invoke(sample);
    }

    public void Dispose() => _stop.Dispose();
}
