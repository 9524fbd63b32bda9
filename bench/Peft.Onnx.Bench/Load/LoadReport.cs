using System.Text.Json.Serialization;

namespace Peft.Onnx.Bench.Load;

/// <summary>Everything a `load` run measured: the settings it ran with, totals, latencies, the RSS trend and the whole time series.</summary>
public sealed record LoadReport
{
    [JsonPropertyName("model")] public required string Model { get; init; }
    [JsonPropertyName("device")] public required string Device { get; init; }
    [JsonPropertyName("cores")] public int Cores { get; init; } = Environment.ProcessorCount;
    [JsonPropertyName("concurrency")] public int Concurrency { get; init; }
    [JsonPropertyName("duration_seconds")] public double DurationSeconds { get; init; }
    [JsonPropertyName("elapsed_seconds")] public double ElapsedSeconds { get; init; }
    [JsonPropertyName("warmup_seconds")] public double WarmupSeconds { get; init; }
    [JsonPropertyName("prompt_length")] public int PromptLength { get; init; }
    [JsonPropertyName("new_tokens")] public int NewTokens { get; init; }
    [JsonPropertyName("prompts")] public int Prompts { get; init; }
    /// <summary>"text" (sent through the folder's tokenizer) or "ids" (the folder has none).</summary>
    [JsonPropertyName("prompt_kind")] public required string PromptKind { get; init; }
    [JsonPropertyName("cancel_fraction")] public double CancelFraction { get; init; }
    [JsonPropertyName("seed")] public int Seed { get; init; }
    /// <summary>Whether a full GC ran before each sample (the GC counts include those collections).</summary>
    [JsonPropertyName("forced_gc")] public bool ForcedGc { get; init; }

    /// <summary>The reference pass: every distinct prompt once, one after another.</summary>
    [JsonPropertyName("sequential_seconds")] public double SequentialSeconds { get; init; }
    [JsonPropertyName("sequential_tokens_per_second")] public double SequentialTokensPerSecond { get; init; }

    [JsonPropertyName("requests")] public long Requests { get; init; }
    [JsonPropertyName("completed")] public long Completed { get; init; }
    [JsonPropertyName("cancelled")] public long Cancelled { get; init; }
    [JsonPropertyName("cancel_requested")] public long CancelRequested { get; init; }
    /// <summary>Requests whose cancel came after they had finished (checked like the others).</summary>
    [JsonPropertyName("completed_before_cancel")] public long CompletedBeforeCancel { get; init; }
    [JsonPropertyName("mismatches")] public long Mismatches { get; init; }
    [JsonPropertyName("errors")] public long Errors { get; init; }
    [JsonPropertyName("slow_cancels")] public long SlowCancels { get; init; }
    /// <summary>Steps begun (generator) or tokens streamed after their request's cancel: 0 when cancels stop within a step.</summary>
    [JsonPropertyName("late_steps")] public long LateSteps { get; init; }
    [JsonPropertyName("tokens")] public long Tokens { get; init; }
    [JsonPropertyName("tokens_per_second")] public double TokensPerSecond { get; init; }
    [JsonPropertyName("max_in_flight")] public int MaxInFlight { get; init; }
    [JsonPropertyName("requests_by_api")] public required Dictionary<string, int> RequestsByApi { get; init; }

    [JsonPropertyName("latency_p50_seconds")] public double LatencyP50Seconds { get; init; }
    [JsonPropertyName("latency_p95_seconds")] public double LatencyP95Seconds { get; init; }
    [JsonPropertyName("latency_max_seconds")] public double LatencyMaxSeconds { get; init; }
    [JsonPropertyName("cancel_latency_p50_seconds")] public double CancelLatencyP50Seconds { get; init; }
    [JsonPropertyName("cancel_latency_p95_seconds")] public double CancelLatencyP95Seconds { get; init; }
    [JsonPropertyName("cancel_latency_max_seconds")] public double CancelLatencyMaxSeconds { get; init; }
    [JsonPropertyName("cancel_deadline_seconds")] public double CancelDeadlineSeconds { get; init; }

    [JsonPropertyName("rss")] public required RssTrend Rss { get; init; }
    /// <summary>RSS once every request has ended and a full GC has run.</summary>
    [JsonPropertyName("idle_rss_bytes")] public long IdleRssBytes { get; init; }

    /// <summary>The first failures in words (mismatches, errors, slow cancels, RSS growth).</summary>
    [JsonPropertyName("failures")] public required IReadOnlyList<string> Failures { get; init; }
    [JsonPropertyName("passed")] public bool Passed { get; init; }
    [JsonPropertyName("samples")] public required IReadOnlyList<LoadSample> Samples { get; init; }
}
