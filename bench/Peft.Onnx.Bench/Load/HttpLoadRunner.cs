using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Bench.Load;

/// <summary>
/// `load --url`: the same prompts and checks as the in-process run, sent to a running `peft-onnx serve` over HTTP.
/// The reference answers come from the Runtime in this process (each prompt alone, greedy, no stop token); then
/// <see cref="LoadSettings.Concurrency"/> clients stream completions for the duration (ignore_eos, so every request
/// does the same work), a share of them disconnecting part-way, and every finished answer must equal its reference
/// token for token. Reports tokens/s and time to first token. The server's resident memory is read from its /metrics
/// every <see cref="LoadSettings.SampleIntervalSeconds"/> and must stay flat after warm-up like the in-process run's.
/// </summary>
public static class HttpLoadRunner
{
    public static HttpLoadReport Run(LoadSettings s, Uri url, TextWriter log) => RunAsync(s, url, log).GetAwaiter().GetResult();

    public static async Task<HttpLoadReport> RunAsync(LoadSettings s, Uri url, TextWriter log) =>
        await DriveAsync(s, url, References(s, log), log).ConfigureAwait(false);

    /// <summary>The reference answers: each prompt generated alone by the Runtime in this process.</summary>
    public static LoadReferences References(LoadSettings s, TextWriter log)
    {
        using var model = OnnxModel.Load(s.Dir, s.Device);
        var prompts = LoadRunner.Sequential(model, s, log, out var seconds);
        return new LoadReferences(prompts, seconds);
    }

    /// <summary>An http(s) address given as <paramref name="option"/>, or a one-line error naming it.</summary>
    public static Uri ParseAddress(string option, string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var address) && address.Scheme is "http" or "https" ? address
            : throw new PeftOnnxException($"load: --{option} {text} is not an http(s) address (expected e.g. http://127.0.0.1:8000)");

    /// <summary>Drives the server at <paramref name="url"/> with the prompts of <paramref name="references"/>.</summary>
    public static async Task<HttpLoadReport> DriveAsync(LoadSettings s, Uri url, LoadReferences references, TextWriter log)
    {
        var prompts = references.Prompts;
        double sequentialSeconds = references.SequentialSeconds;
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = s.Concurrency + 4, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
        {
            BaseAddress = url,
            Timeout = TimeSpan.FromSeconds(Math.Max(60, s.DurationSeconds * 2)),
        };
        string name;
        ServerMetricsText first;
        try
        {
            var models = JsonNode.Parse(await http.GetStringAsync("/v1/models").ConfigureAwait(false))!;
            name = models["data"]![0]!["id"]!.GetValue<string>();
            first = ServerMetricsText.Parse(await http.GetStringAsync("/metrics").ConfigureAwait(false), url);
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException or NullReferenceException)
        {
            throw new PeftOnnxException($"load: --url {url}: GET /v1/models failed ({ex.Message}); expected a running peft-onnx serve");
        }

        var counters = new ConcurrentBag<string>();
        var latencies = new ConcurrentBag<double>();
        var firstTokens = new ConcurrentBag<double>();
        var cancelLatencies = new ConcurrentBag<double>();
        long requests = 0, completed = 0, cancelled = 0, mismatches = 0, errors = 0, tokens = 0;
        var clock = Stopwatch.StartNew();
        log.WriteLine($"load: {s.Concurrency} HTTP clients on {url} (model '{name}', {first.Mode} scheduling) for {s.DurationSeconds:F0} s");
        var samples = new List<ServerSample> { new(0, first.RssBytes, first.Tokens) };
        var sampleErrors = new ConcurrentBag<string>();
        using var stopSampling = new CancellationTokenSource();

        async Task Sample()
        {
            try
            {
                var page = ServerMetricsText.Parse(await http.GetStringAsync("/metrics").ConfigureAwait(false), url);
                lock (samples) samples.Add(new ServerSample(Math.Round(clock.Elapsed.TotalSeconds, 3), page.RssBytes, page.Tokens));
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or PeftOnnxException)
            {
                sampleErrors.Add($"GET /metrics: {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
            }
        }

        async Task Sampler()
        {
            try
            {
                while (true)
                {
                    // the next tick on the interval's grid: a slow scrape skips ticks rather than bunching samples
                    double next = (Math.Floor(clock.Elapsed.TotalSeconds / s.SampleIntervalSeconds) + 1) * s.SampleIntervalSeconds;
                    await Task.Delay(TimeSpan.FromSeconds(next) - clock.Elapsed is { Ticks: > 0 } wait ? wait : TimeSpan.Zero, stopSampling.Token).ConfigureAwait(false);
                    await Sample().ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stopSampling.IsCancellationRequested) { }
        }
        var sampler = Task.Run(Sampler);

        async Task Client(int index)
        {
            var random = new Random(s.Seed * 7919 + index);
            while (clock.Elapsed.TotalSeconds < s.DurationSeconds)
            {
                var prompt = prompts[random.Next(prompts.Count)];
                int cancelAfter = random.NextDouble() < s.CancelFraction && s.NewTokens > 1 ? random.Next(1, s.NewTokens) : 0;
                Interlocked.Increment(ref requests);
                var body = new JsonObject
                {
                    ["model"] = name, ["max_tokens"] = s.NewTokens, ["temperature"] = 0, ["ignore_eos"] = true, ["stream"] = true,
                    ["prompt"] = prompt.Request.Prompts != null ? prompt.Request.Prompts[0] : new JsonArray(prompt.Request.InputIds![0].Select(i => (JsonNode)i).ToArray()),
                };
                var start = Stopwatch.GetTimestamp();
                var ids = new List<int>();
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref errors);
                        counters.Add($"prompt {prompt.Index}: HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync().ConfigureAwait(false)}");
                        continue;
                    }
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync().ConfigureAwait(false));
                    bool done = false;
                    while (!done && await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
                    {
                        if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                        var data = line["data: ".Length..];
                        if (data == "[DONE]") { done = true; break; }
                        var chunk = JsonNode.Parse(data)!["choices"]!.AsArray();
                        if (chunk.Count == 0) continue;
                        bool none = ids.Count == 0;
                        foreach (var id in chunk[0]!["token_ids"]!.AsArray()) ids.Add(id!.GetValue<int>());
                        if (none && ids.Count > 0) firstTokens.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
                        if (cancelAfter > 0 && ids.Count >= cancelAfter) break;
                    }
                    if (cancelAfter > 0 && !done)
                    {
                        // leaving the using blocks closes the stream: the server sees the disconnect
                        var cancelAt = Stopwatch.GetTimestamp();
                        response.Dispose();
                        cancelLatencies.Add(Stopwatch.GetElapsedTime(cancelAt).TotalSeconds);
                        Interlocked.Increment(ref cancelled);
                        Interlocked.Add(ref tokens, ids.Count);
                        continue;
                    }
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
                    Interlocked.Increment(ref completed);
                    Interlocked.Add(ref tokens, ids.Count);
                    if (!ids.SequenceEqual(prompt.ExpectedTokens))
                    {
                        Interlocked.Increment(ref mismatches);
                        counters.Add($"prompt {prompt.Index}: {ids.Count} tokens [{string.Join(',', ids.Take(8))}...], the sequential run gave {prompt.ExpectedTokens.Length} [{string.Join(',', prompt.ExpectedTokens.Take(8))}...]");
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException or TaskCanceledException)
                {
                    Interlocked.Increment(ref errors);
                    counters.Add($"prompt {prompt.Index}: {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, s.Concurrency).Select(i => Task.Run(() => Client(i)))).ConfigureAwait(false);
        double elapsed = clock.Elapsed.TotalSeconds;
        await stopSampling.CancelAsync().ConfigureAwait(false);
        await sampler.ConfigureAwait(false);
        await Sample().ConfigureAwait(false);
        var rss = RssTrend.Fit(samples, s.WarmupSeconds, elapsed + s.SampleIntervalSeconds, s.MaxRssGrowthBytes);
        var failures = counters.Take(20).ToList();
        failures.AddRange(sampleErrors.Take(5));
        if (completed == 0) failures.Add("no request completed");
        if (!rss.Flat)
            failures.Add($"server RSS grew {rss.GrowthBytes / 1048576.0:F1} MB after warm-up over {rss.SamplesAfterWarmup} samples (limit {rss.MaxGrowthBytes / 1048576.0:F1} MB)");
        var sortedLatency = latencies.Order().ToArray();
        var sortedFirst = firstTokens.Order().ToArray();
        var sortedCancel = cancelLatencies.Order().ToArray();
        return new HttpLoadReport
        {
            Url = url.ToString(),
            Model = name,
            Scheduling = first.Mode,
            Concurrency = s.Concurrency,
            DurationSeconds = s.DurationSeconds,
            ElapsedSeconds = Math.Round(elapsed, 3),
            Prompts = prompts.Count,
            NewTokens = s.NewTokens,
            SequentialTokensPerSecond = Math.Round(prompts.Sum(p => p.ExpectedTokens.Length) / sequentialSeconds, 1),
            Requests = requests,
            Completed = completed,
            Cancelled = cancelled,
            Mismatches = mismatches,
            Errors = errors,
            SlowCancels = sortedCancel.Count(c => c > s.CancelDeadlineSeconds),
            Tokens = tokens,
            TokensPerSecond = Math.Round(tokens / elapsed, 1),
            TimeToFirstTokenP50Seconds = Math.Round(LoadRunner.Percentile(sortedFirst, 0.50), 4),
            TimeToFirstTokenP95Seconds = Math.Round(LoadRunner.Percentile(sortedFirst, 0.95), 4),
            LatencyP50Seconds = Math.Round(LoadRunner.Percentile(sortedLatency, 0.50), 4),
            LatencyP95Seconds = Math.Round(LoadRunner.Percentile(sortedLatency, 0.95), 4),
            CancelLatencyMaxSeconds = Math.Round(sortedCancel.LastOrDefault(), 4),
            Rss = rss,
            Samples = samples,
            Failures = failures,
            Passed = failures.Count == 0 && mismatches == 0 && errors == 0 && rss.Flat,
        };
    }
}
