using System.Text.Json.Serialization;

namespace Peft.Onnx.Bench.Load;

/// <summary>One point of the time series: process memory, GC activity and request counts at <see cref="Seconds"/> into the run.</summary>
public sealed record LoadSample(
    [property: JsonPropertyName("t_seconds")] double Seconds,
    [property: JsonPropertyName("rss_bytes")] long RssBytes,
    [property: JsonPropertyName("managed_heap_bytes")] long ManagedHeapBytes,
    [property: JsonPropertyName("gc0")] int Gen0Collections,
    [property: JsonPropertyName("gc1")] int Gen1Collections,
    [property: JsonPropertyName("gc2")] int Gen2Collections,
    [property: JsonPropertyName("requests_completed")] long RequestsCompleted,
    [property: JsonPropertyName("requests_cancelled")] long RequestsCancelled,
    [property: JsonPropertyName("tokens")] long Tokens,
    [property: JsonPropertyName("tokens_per_second")] double TokensPerSecond,
    [property: JsonPropertyName("in_flight")] int InFlight,
    [property: JsonPropertyName("thread_pool_threads")] int ThreadPoolThreads);
