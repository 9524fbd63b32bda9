using Peft.Onnx.Server.Metrics;
using System.Collections.Concurrent;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Batching;

namespace Peft.Onnx.Server.Scheduling;

/// <summary>
/// Continuous batching on one model: a dedicated thread owns a <see cref="ContinuousBatch"/>; at each step boundary
/// it drops the rows whose client went away, prefills waiting jobs into the free rows, then steps every row once and
/// hands each its token. A job's tokens are those of its request generated alone.
/// </summary>
public sealed class BatchScheduler : IGenerationScheduler
{
    private readonly OnnxModel _model;
    private readonly SchedulerLimits _limits;
    private readonly ServerMetrics _metrics;
    private readonly ConcurrentQueue<GenerationJob> _waiting = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private int _queued;
    private int _running;
    // a job that waits for the batch to drain: adapters were added or removed since the running rows started
    private GenerationJob? _held;

    public BatchScheduler(OnnxModel model, SchedulerLimits limits, ServerMetrics metrics)
    {
        _model = model;
        _limits = limits;
        _metrics = metrics;
        _thread = new Thread(Loop) { IsBackground = true, Name = "peft-onnx batch" };
        _thread.Start();
    }

    public string Mode => "continuous";
    public int QueueDepth => Volatile.Read(ref _queued);
    public int Running => Volatile.Read(ref _running);

    public bool TryEnqueue(GenerationJob job)
    {
        if (Interlocked.Increment(ref _queued) > _limits.MaxQueue)
        {
            Interlocked.Decrement(ref _queued);
            return false;
        }
        _waiting.Enqueue(job);
        _signal.Release();
        return true;
    }

    private void Loop()
    {
        using var batch = new ContinuousBatch(_model, _metrics.BatchPhases, _metrics.PrefixCache);
        var jobs = new Dictionary<BatchRow, GenerationJob>();
        while (true)
        {
            foreach (var (row, job) in jobs)
                if (job.Cancellation.IsCancellationRequested) row.Cancel();
            Admit(batch, jobs);
            if (batch.Count == 0)
            {
                Release(batch, jobs);
                if (_stop.IsCancellationRequested && _waiting.IsEmpty && _held == null) return;
                try { _signal.Wait(_stop.Token); }
                catch (OperationCanceledException) { }
                continue;
            }
            _metrics.ObserveBatch(batch.Count);
            try
            {
                var tokens = batch.Step();
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                foreach (var t in tokens)
                {
                    var job = jobs[t.Row];
                    job.Deliver(t.TokenId);
                    _metrics.CountTokens(1);
                    if (t.Finished) job.Complete(t.Row.StoppedOnToken);
                }
                batch.Timings.Add(BatchPhase.Deliver, started);
            }
            catch (Exception ex)
            {
                // a failed step fails the rows in it (never the thread): the next jobs start a fresh batch state
                foreach (var (row, job) in jobs) { row.Cancel(); job.Fail(ex); }
            }
            batch.RemoveDone();
            Release(batch, jobs);
        }
    }

    /// <summary>
    /// Adds waiting jobs while the batch has room and prefills them together in one run (a bad request fails its own
    /// job only; a failed run fails the jobs it held).
    /// </summary>
    private void Admit(ContinuousBatch batch, Dictionary<BatchRow, GenerationJob> jobs)
    {
        var added = new Dictionary<BatchRow, GenerationJob>();
        while (batch.Count < _limits.MaxBatchSize && NextJob() is { } job)
        {
            if (job.Cancellation.IsCancellationRequested) { job.Fail(new OperationCanceledException(job.Cancellation)); continue; }
            try
            {
                if (batch.Add(job.Request) is not { } row)
                {
                    _held = job;
                    break;
                }
                added.Add(row, job);
            }
            catch (Exception ex)
            {
                job.Fail(ex);
            }
        }
        if (added.Count == 0) return;
        IReadOnlyList<RowToken> firsts;
        try
        {
            firsts = batch.Prefill();
        }
        catch (Exception ex)
        {
            foreach (var (row, job) in added) { job.Fail(ex); row.Dispose(); }
            return;
        }
        foreach (var first in firsts)
        {
            var job = added[first.Row];
            _metrics.ObserveFirstToken(job.QueuedAt);
            job.Deliver(first.TokenId);
            _metrics.CountTokens(1);
            if (first.Finished)
            {
                job.Complete(first.Row.StoppedOnToken);
                first.Row.Dispose();
            }
            else
            {
                jobs.Add(first.Row, job);
                Interlocked.Increment(ref _running);
            }
        }
    }

    private GenerationJob? NextJob()
    {
        if (_held is { } held)
        {
            _held = null;
            return held;
        }
        if (!_waiting.TryDequeue(out var job)) return null;
        Interlocked.Decrement(ref _queued);
        return job;
    }

    /// <summary>Completes and disposes the rows that left the batch.</summary>
    private void Release(ContinuousBatch batch, Dictionary<BatchRow, GenerationJob> jobs)
    {
        foreach (var row in jobs.Keys.Where(r => r.IsDone).ToList())
        {
            var job = jobs[row];
            if (row.IsCancelled) job.Fail(new OperationCanceledException(job.Cancellation));
            else job.Complete(row.StoppedOnToken);
            jobs.Remove(row);
            row.Dispose();
            Interlocked.Decrement(ref _running);
        }
    }

    /// <summary>Finishes the jobs already queued or running, then ends the thread.</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _signal.Release();
        await Task.Run(() => _thread.Join()).ConfigureAwait(false);
        _stop.Dispose();
        _signal.Dispose();
    }
}
