namespace Peft.Onnx.Server.Scheduling;

/// <summary>Runs the jobs of one loaded model; every member is safe to call from many threads.</summary>
public interface IGenerationScheduler : IAsyncDisposable
{
    /// <summary>"continuous" or "per-request".</summary>
    string Mode { get; }

    /// <summary>Queues <paramref name="job"/>; false when the queue is full (the caller answers 429).</summary>
    bool TryEnqueue(GenerationJob job);

    /// <summary>Jobs waiting to start.</summary>
    int QueueDepth { get; }

    /// <summary>Rows running now.</summary>
    int Running { get; }
}
