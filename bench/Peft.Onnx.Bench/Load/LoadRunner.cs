using System.Diagnostics;
using Peft.Onnx.Bench;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Bench.Load;

/// <summary>
/// `load`: one model loaded once; every distinct prompt run sequentially for its reference answer; then
/// <see cref="LoadSettings.Concurrency"/> callers send requests at once for the duration through the public API (blocking,
/// awaited, streamed and stepped calls, a share of them cancelled part-way) while a sampler records RSS and the counters.
/// </summary>
public static class LoadRunner
{
    public static LoadReport Run(LoadSettings s, TextWriter log)
    {
        using var model = OnnxModel.Load(s.Dir, s.Device);
        var prompts = Sequential(model, s, log, out var sequentialSeconds);
        int sequentialTokens = prompts.Sum(p => p.ExpectedTokens.Length);

        // The blocking calls hold a pool thread each for a whole request, as in a server that serves them: without room
        // for all of them the pool would add threads slowly and the load would be far below the concurrency asked for.
        ThreadPool.GetMinThreads(out var workerThreads, out var ioThreads);
        ThreadPool.SetMinThreads(Math.Max(workerThreads, s.Concurrency + Environment.ProcessorCount), ioThreads);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        var counters = new LoadCounters();
        var clock = new Stopwatch();
        double progressEvery = Math.Max(s.SampleIntervalSeconds, s.DurationSeconds / 10), nextProgress = progressEvery;
        using var sampler = new ResourceSampler(counters, clock, TimeSpan.FromSeconds(s.SampleIntervalSeconds), s.ForceGc, sample =>
        {
            if (sample.Seconds < nextProgress) return;
            nextProgress += progressEvery;
            log.WriteLine($"load: {sample.Seconds,6:F1} s  rss {sample.RssBytes / 1048576.0,7:F1} MB  managed {sample.ManagedHeapBytes / 1048576.0,6:F1} MB  " +
                $"{sample.RequestsCompleted} done  {sample.RequestsCancelled} cancelled  {sample.TokensPerSecond:F0} tok/s  {sample.InFlight} in flight");
        });
        // a request takes about concurrency / cores times its sequential latency once the cores are shared
        var latency = new LatencyEstimate(sequentialSeconds / prompts.Count * Math.Max(1.0, (double)s.Concurrency / Environment.ProcessorCount));
        var workers = Enumerable.Range(0, s.Concurrency).Select(i => new LoadWorker(i, model, prompts, s, counters, latency, clock)).ToList();
        log.WriteLine($"load: {s.Concurrency} concurrent callers for {s.DurationSeconds:F0} s (warm-up {s.WarmupSeconds:F1} s)");
        clock.Start();
        sampler.Start();
        Task.WaitAll(workers.Select(w => Task.Run(w.RunAsync)).ToArray());
        var samples = sampler.Stop();
        var elapsed = clock.Elapsed.TotalSeconds;

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long idle = MemoryProbe.CurrentRss();

        var trend = RssTrend.Fit(samples, s.WarmupSeconds, s.DurationSeconds, s.MaxRssGrowthBytes);
        var latencies = workers.SelectMany(w => w.Latencies).Order().ToArray();
        var cancelLatencies = workers.SelectMany(w => w.CancelLatencies).Order().ToArray();
        var failures = counters.Failures.ToList();
        if (!trend.Flat)
            failures.Add(trend.SamplesAfterWarmup < RssTrend.MinSamples
                ? $"RSS: {trend.SamplesAfterWarmup} samples after warm-up, too few to see a trend (need {RssTrend.MinSamples})"
                : $"RSS grew {trend.GrowthBytes / 1048576.0:F1} MB after warm-up (fitted slope {trend.SlopeBytesPerSecond / 1048576.0 * 60:F2} MB/min), more than the {s.MaxRssGrowthBytes / 1048576.0:F1} MB allowed");
        if (counters.Completed == 0) failures.Add("no request completed");

        return new LoadReport
        {
            Model = model.Directory,
            Device = model.DeviceName,
            Concurrency = s.Concurrency,
            DurationSeconds = s.DurationSeconds,
            ElapsedSeconds = R(elapsed),
            WarmupSeconds = s.WarmupSeconds,
            PromptLength = s.PromptLength,
            NewTokens = s.NewTokens,
            Prompts = prompts.Count,
            PromptKind = prompts[0].Request.Prompts != null ? "text" : "ids",
            CancelFraction = s.CancelFraction,
            Seed = s.Seed,
            ForcedGc = s.ForceGc,
            SequentialSeconds = R(sequentialSeconds),
            SequentialTokensPerSecond = R(sequentialTokens / sequentialSeconds),
            Requests = counters.Started,
            Completed = counters.Completed,
            Cancelled = counters.Cancelled,
            CancelRequested = counters.CancelRequested,
            CompletedBeforeCancel = counters.CompletedBeforeCancel,
            Mismatches = counters.Mismatches,
            Errors = counters.Errors,
            SlowCancels = counters.SlowCancels,
            LateSteps = counters.LateSteps,
            Tokens = counters.Tokens,
            TokensPerSecond = R(counters.Tokens / elapsed),
            MaxInFlight = counters.MaxInFlight,
            RequestsByApi = Enum.GetValues<ApiStyle>().ToDictionary(a => ApiName(a), a => workers.Sum(w => w.RequestsByStyle[a])),
            LatencyP50Seconds = R(Percentile(latencies, 0.50)),
            LatencyP95Seconds = R(Percentile(latencies, 0.95)),
            LatencyMaxSeconds = R(latencies.LastOrDefault()),
            CancelLatencyP50Seconds = R(Percentile(cancelLatencies, 0.50)),
            CancelLatencyP95Seconds = R(Percentile(cancelLatencies, 0.95)),
            CancelLatencyMaxSeconds = R(cancelLatencies.LastOrDefault()),
            CancelDeadlineSeconds = s.CancelDeadlineSeconds,
            Rss = trend,
            IdleRssBytes = idle,
            Failures = failures,
            Passed = failures.Count == 0 && counters.Mismatches == 0 && counters.Errors == 0 && counters.SlowCancels == 0 && counters.LateSteps == 0,
            Samples = samples,
        };
    }

    /// <summary>Each distinct prompt once, one after another: the answers the concurrent requests must equal.</summary>
    internal static List<LoadPrompt> Sequential(OnnxModel model, LoadSettings s, TextWriter log, out double seconds)
    {
        var requests = LoadPrompt.Requests(model, s.Prompts, s.PromptLength, s.NewTokens, s.Seed);
        var clock = Stopwatch.StartNew();
        var prompts = new List<LoadPrompt>(requests.Count);
        foreach (var request in requests)
        {
            var lap = Stopwatch.StartNew();
            var result = model.Generate(request);
            prompts.Add(new LoadPrompt(prompts.Count, request, result.NewTokens[0], result.NewText?[0], lap.Elapsed.TotalSeconds));
        }
        seconds = clock.Elapsed.TotalSeconds;
        log.WriteLine($"load: {prompts.Count} prompts run sequentially in {seconds:F2} s ({model.DeviceName}); their answers are the reference");
        return prompts;
    }

    public static string ApiName(ApiStyle style) => style switch
    {
        ApiStyle.Generate => "generate",
        ApiStyle.GenerateAsync => "generate_async",
        ApiStyle.Stream => "stream",
        _ => "generator",
    };

    /// <summary>Nearest-rank percentile of sorted values (0 when there are none).</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p) =>
        sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static double R(double v) => Math.Round(v, 6);
}
