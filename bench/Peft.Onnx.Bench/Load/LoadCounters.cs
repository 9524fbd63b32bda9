using System.Collections.Concurrent;

namespace Peft.Onnx.Bench.Load;

/// <summary>
/// Counts shared by the workers and the sampler (updated with Interlocked, read at any time). Failures keep their
/// first <see cref="MaxNotes"/> descriptions for the report.
/// </summary>
public sealed class LoadCounters
{
    public const int MaxNotes = 20;

    private long _started, _completed, _cancelled, _cancelRequested, _completedBeforeCancel, _mismatches, _errors, _slowCancels, _lateSteps, _tokens;
    private int _inFlight, _maxInFlight, _notes;
    private readonly ConcurrentQueue<string> _failures = new();

    public long Started => Interlocked.Read(ref _started);
    public long Completed => Interlocked.Read(ref _completed);
    public long Cancelled => Interlocked.Read(ref _cancelled);
    public long CancelRequested => Interlocked.Read(ref _cancelRequested);
    public long CompletedBeforeCancel => Interlocked.Read(ref _completedBeforeCancel);
    public long Mismatches => Interlocked.Read(ref _mismatches);
    public long Errors => Interlocked.Read(ref _errors);
    public long SlowCancels => Interlocked.Read(ref _slowCancels);
    public long LateSteps => Interlocked.Read(ref _lateSteps);
    public long Tokens => Interlocked.Read(ref _tokens);
    public int InFlight => Volatile.Read(ref _inFlight);
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);
    public IReadOnlyList<string> Failures => _failures.ToArray();

    public void Start(bool willCancel)
    {
        Interlocked.Increment(ref _started);
        if (willCancel) Interlocked.Increment(ref _cancelRequested);
        int now = Interlocked.Increment(ref _inFlight);
        int max;
        while (now > (max = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, max) != max) { }
    }

    public void End() => Interlocked.Decrement(ref _inFlight);

    public void Complete(int tokens, bool cancelWasRequested)
    {
        Interlocked.Increment(ref _completed);
        Interlocked.Add(ref _tokens, tokens);
        if (cancelWasRequested) Interlocked.Increment(ref _completedBeforeCancel);
    }

    public void Cancel() => Interlocked.Increment(ref _cancelled);

    public void Mismatch(string note) { Interlocked.Increment(ref _mismatches); Note(note); }

    public void Error(string note) { Interlocked.Increment(ref _errors); Note(note); }

    public void SlowCancel(string note) { Interlocked.Increment(ref _slowCancels); Note(note); }

    /// <summary>A step or streamed token after the request's cancel: the runtime did not stop within a step.</summary>
    public void LateStep(string note) { Interlocked.Increment(ref _lateSteps); Note(note); }

    private void Note(string note)
    {
        if (Interlocked.Increment(ref _notes) <= MaxNotes) _failures.Enqueue(note);
    }
}
