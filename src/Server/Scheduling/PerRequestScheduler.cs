using Peft.Onnx.Server.Metrics;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Server.Scheduling;

/// <summary>
/// For exports a continuous batch cannot hold (encoder-decoder, baked virtual tokens, a cache on the GPU): each job
/// runs its own generator on the thread pool, at most MaxBatchSize at once.
/// </summary>
public sealed class PerRequestScheduler : IGenerationScheduler
{
    private readonly OnnxModel _model;
    private readonly SchedulerLimits _limits;
    private readonly ServerMetrics _metrics;
    private readonly SemaphoreSlim _slots;
    private readonly List<Task> _inFlight = [];
    private readonly object _lock = new();
    private int _queued;
    private int _running;

    public PerRequestScheduler(OnnxModel model, SchedulerLimits limits, ServerMetrics metrics)
    {
        _model = model;
        _limits = limits;
        _metrics = metrics;
        _slots = new SemaphoreSlim(limits.MaxBatchSize);
    }

    public string Mode => "per-request";
    public int QueueDepth => Volatile.Read(ref _queued);
    public int Running => Volatile.Read(ref _running);

    public bool TryEnqueue(GenerationJob job)
    {
        if (Interlocked.Increment(ref _queued) > _limits.MaxQueue)
        {
            Interlocked.Decrement(ref _queued);
            return false;
        }
        var task = Task.Run(() => RunAsync(job));
        lock (_lock)
        {
            _inFlight.RemoveAll(t => t.IsCompleted);
            _inFlight.Add(task);
        }
        return true;
    }

    private async Task RunAsync(GenerationJob job)
    {
        try
        {
            await _slots.WaitAsync(job.Cancellation).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex)
        {
            Interlocked.Decrement(ref _queued);
            job.Fail(ex);
            return;
        }
        Interlocked.Decrement(ref _queued);
        Interlocked.Increment(ref _running);
        try
        {
            using var generator = _model.CreateGenerator(job.Request);
            bool stopped = false, first = true;
            while (!generator.IsDone)
            {
                foreach (var t in generator.GenerateNextToken(job.Cancellation))
                {
                    if (first) { _metrics.ObserveFirstToken(job.QueuedAt); first = false; }
                    job.Deliver(t.TokenId);
                    _metrics.CountTokens(1);
                    stopped = IsStop(t.TokenId);
                }
                _metrics.ObserveBatch(Running);
            }
            job.Complete(stopped);
        }
        catch (Exception ex) when (ex is PeftOnnxException or OperationCanceledException)
        {
            job.Fail(ex);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
            _slots.Release();
        }
    }

    private bool IsStop(int token) => (_model.GenerationDefaults.EosTokenId ?? []).Contains(token);

    /// <summary>Waits for the jobs in flight.</summary>
    public async ValueTask DisposeAsync()
    {
        Task[] tasks;
        lock (_lock) tasks = [.. _inFlight];
        await Task.WhenAll(tasks).ConfigureAwait(false);
        _slots.Dispose();
    }
}
