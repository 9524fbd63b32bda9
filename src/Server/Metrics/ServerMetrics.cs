using System.Diagnostics;
using System.Globalization;
using System.Text;
using Peft.Onnx.Runtime.Batching;

namespace Peft.Onnx.Server.Metrics;

/// <summary>
/// The server's counters, one instance per server (no process-wide registry), written in Prometheus' text format:
/// requests by endpoint and status, generated tokens, queue depth and running rows (read at scrape time), batch
/// occupancy per step, a time-to-first-token histogram, the process's resident memory (so a load run on another
/// process can check that it stays flat) and scheduling mode, the continuous batch thread's seconds per phase (a
/// profile without a tracer) and the prefix cache's lookups.
/// </summary>
public sealed class ServerMetrics(PromptCache? prefixCache = null)
{
    private static readonly double[] FirstTokenBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    private static readonly double[] OccupancyBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];
    private readonly object _lock = new();
    private readonly Dictionary<(string Endpoint, int Status), long> _requests = [];
    private readonly Histogram _firstToken = new(FirstTokenBuckets);
    private readonly Histogram _occupancy = new(OccupancyBuckets);
    private long _tokens;

    public void CountRequest(string endpoint, int status)
    {
        lock (_lock) _requests[(endpoint, status)] = _requests.GetValueOrDefault((endpoint, status)) + 1;
    }

    public void CountTokens(int count) => Interlocked.Add(ref _tokens, count);

    public void ObserveFirstToken(long queuedAt)
    {
        lock (_lock) _firstToken.Observe(Stopwatch.GetElapsedTime(queuedAt).TotalSeconds);
    }

    public void ObserveBatch(int rows)
    {
        lock (_lock) _occupancy.Observe(rows);
    }

    public long Tokens => Interlocked.Read(ref _tokens);

    /// <summary>The continuous batch's prefilled prompts (null: disabled), whose hits, misses and evictions are counted here.</summary>
    public PromptCache? PrefixCache { get; } = prefixCache;

    /// <summary>Where the continuous batch's thread spends its time (all zero under per-request scheduling).</summary>
    public BatchTimings BatchPhases { get; } = new();

    /// <summary>
    /// The text exposition; <paramref name="queueDepth"/>, <paramref name="running"/> and the resident memory are
    /// read now; <paramref name="mode"/> is the scheduler's ("continuous" or "per-request").
    /// </summary>
    public string Render(int queueDepth, int running, string mode)
    {
        var s = new StringBuilder();
        void Header(string name, string type, string help) => s.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n");
        void Line(string name, string labels, object value) => s.Append(CultureInfo.InvariantCulture, $"{name}{labels} {value}\n");
        void Single(string name, string type, string help, object value)
        {
            Header(name, type, help);
            Line(name, "", value);
        }
        lock (_lock)
        {
            Header("peft_onnx_requests_total", "counter", "HTTP requests by endpoint and status.");
            foreach (var ((endpoint, status), count) in _requests.OrderBy(p => p.Key.Endpoint, StringComparer.Ordinal).ThenBy(p => p.Key.Status))
                Line("peft_onnx_requests_total", $"{{endpoint=\"{endpoint}\",status=\"{status}\"}}", count);
            Single("peft_onnx_generated_tokens_total", "counter", "Tokens generated.", Tokens);
            Single("peft_onnx_queue_depth", "gauge", "Requests waiting to start.", queueDepth);
            Single("peft_onnx_running_rows", "gauge", "Requests generating now.", running);
            _occupancy.Write(s, "peft_onnx_batch_occupancy", "Rows in the batch at each step.");
            _firstToken.Write(s, "peft_onnx_time_to_first_token_seconds", "Seconds from queueing a request to its first token.");
            Header("peft_onnx_batch_seconds_total", "counter", "Seconds the continuous batch's thread spent per phase.");
            foreach (var phase in Enum.GetValues<BatchPhase>())
                Line("peft_onnx_batch_seconds_total", $"{{phase=\"{phase.ToString().ToLowerInvariant()}\"}}", BatchPhases.Seconds(phase));
            if (PrefixCache is { } cache)
            {
                Header("peft_onnx_prefix_cache_lookups_total", "counter", "Prompt prefills looked up in the prefix cache, by result.");
                Line("peft_onnx_prefix_cache_lookups_total", "{result=\"hit\"}", cache.Hits);
                Line("peft_onnx_prefix_cache_lookups_total", "{result=\"miss\"}", cache.Misses);
                Single("peft_onnx_prefix_cache_evictions_total", "counter", "Cached prompts dropped to stay within the bound.", cache.Evictions);
                Single("peft_onnx_prefix_cache_bytes", "gauge", "Bytes the cached prompts hold.", cache.Bytes);
            }
            Header("peft_onnx_scheduling", "gauge", "The scheduler serving requests (1 for the mode in use).");
            Line("peft_onnx_scheduling", $"{{mode=\"{mode}\"}}", 1);
            Single("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", Environment.WorkingSet);
        }
        return s.ToString();
    }
}
