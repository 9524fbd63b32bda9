namespace Peft.Onnx.Bench.Load;

/// <summary>What `load --url` measured against a running server, and whether it passed (no mismatch, no error, prompt cancels).</summary>
public sealed record HttpLoadReport
{
    public required string Url { get; init; }
    public required string Model { get; init; }
    /// <summary>The server's scheduling mode as its /metrics names it ("continuous" or "per-request").</summary>
    public required string Scheduling { get; init; }
    public int Concurrency { get; init; }
    public double DurationSeconds { get; init; }
    public double ElapsedSeconds { get; init; }
    public int Prompts { get; init; }
    public int NewTokens { get; init; }
    /// <summary>The reference answers: each prompt generated alone by the Runtime in this process.</summary>
    public double SequentialTokensPerSecond { get; init; }
    public long Requests { get; init; }
    public long Completed { get; init; }
    public long Cancelled { get; init; }
    public long Mismatches { get; init; }
    public long Errors { get; init; }
    public long SlowCancels { get; init; }
    public long Tokens { get; init; }
    public double TokensPerSecond { get; init; }
    public double TimeToFirstTokenP50Seconds { get; init; }
    public double TimeToFirstTokenP95Seconds { get; init; }
    public double LatencyP50Seconds { get; init; }
    public double LatencyP95Seconds { get; init; }
    public double CancelLatencyMaxSeconds { get; init; }
    /// <summary>The server's resident memory over the run (from its /metrics), judged like the in-process run's.</summary>
    public required RssTrend Rss { get; init; }
    public required List<ServerSample> Samples { get; init; }
    public required List<string> Failures { get; init; }
    public bool Passed { get; init; }
}
