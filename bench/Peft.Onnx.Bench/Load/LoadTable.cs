namespace Peft.Onnx.Bench.Load;

/// <summary>The short stdout summary of a `load` run (the JSON holds the rest).</summary>
public static class LoadTable
{
    public static void Print(LoadReport r, TextWriter o)
    {
        static string Mb(long bytes) => $"{bytes / 1048576.0:F1}";
        o.WriteLine($"load {r.Model} ({r.Device}, {r.Cores} cores): {r.Concurrency} concurrent for {r.ElapsedSeconds:F1} s, {r.Prompts} {r.PromptKind} prompts, {r.NewTokens} new tokens each");
        o.WriteLine($"requests  {r.Requests} ({string.Join(", ", r.RequestsByApi.Select(kv => $"{kv.Key} {kv.Value}"))}), max {r.MaxInFlight} in flight");
        o.WriteLine($"completed {r.Completed}: {r.Mismatches} mismatches, {r.Errors} errors; {r.Tokens} tokens, {r.TokensPerSecond:F0} tok/s (sequential {r.SequentialTokensPerSecond:F0})");
        o.WriteLine($"latency   p50 {r.LatencyP50Seconds * 1000:F0} ms, p95 {r.LatencyP95Seconds * 1000:F0} ms, max {r.LatencyMaxSeconds * 1000:F0} ms");
        o.WriteLine($"cancelled {r.Cancelled} of {r.CancelRequested} ({r.CompletedBeforeCancel} finished first): ended p50 {r.CancelLatencyP50Seconds * 1000:F1} ms, " +
            $"p95 {r.CancelLatencyP95Seconds * 1000:F1} ms, max {r.CancelLatencyMaxSeconds * 1000:F1} ms after the cancel; " +
            $"{r.SlowCancels} beyond {r.CancelDeadlineSeconds} s, {r.LateSteps} steps after a cancel");
        var t = r.Rss;
        o.WriteLine($"RSS MB    {(r.ForcedGc ? "(full GC before each sample) " : "")}start {Mb(t.StartBytes)}, after warm-up {Mb(t.WarmBytes)}, end {Mb(t.EndBytes)}, range {Mb(t.MinAfterWarmupBytes)}..{Mb(t.MaxAfterWarmupBytes)}, idle {Mb(r.IdleRssBytes)}");
        o.WriteLine($"RSS trend {t.SlopeBytesPerSecond / 1048576.0 * 60:+0.00;-0.00} MB/min over {t.SamplesAfterWarmup} samples = {Mb(t.GrowthBytes)} MB growth: {(t.Flat ? "flat" : "GROWING")} (limit {Mb(t.MaxGrowthBytes)} MB)");
        foreach (var f in r.Failures) o.WriteLine($"failure: {f}");
        o.WriteLine(r.Passed ? "PASS" : "FAIL");
    }

    public static void Print(HttpLoadReport r, TextWriter o)
    {
        o.WriteLine($"load {r.Url} (model {r.Model}): {r.Concurrency} HTTP clients for {r.ElapsedSeconds:F1} s, {r.Prompts} prompts, {r.NewTokens} new tokens each");
        o.WriteLine($"completed {r.Completed} of {r.Requests}: {r.Mismatches} mismatches, {r.Errors} errors; {r.Tokens} tokens, {r.TokensPerSecond:F0} tok/s (sequential in process {r.SequentialTokensPerSecond:F0})");
        o.WriteLine($"first token p50 {r.TimeToFirstTokenP50Seconds * 1000:F0} ms, p95 {r.TimeToFirstTokenP95Seconds * 1000:F0} ms; latency p50 {r.LatencyP50Seconds * 1000:F0} ms, p95 {r.LatencyP95Seconds * 1000:F0} ms");
        o.WriteLine($"cancelled {r.Cancelled} (disconnects), {r.SlowCancels} slow");
        PrintServerRss(r, o);
        foreach (var f in r.Failures) o.WriteLine($"failure: {f}");
        o.WriteLine(r.Passed ? "PASS" : "FAIL");
    }

    public static void Print(ServeComparison c, TextWriter o)
    {
        foreach (var (label, r) in new[] { ("baseline", c.Baseline), ("measured", c.Measured) })
        {
            o.WriteLine($"== {label}: {r.Scheduling} scheduling at {r.Url}");
            Print(r, o);
        }
        o.WriteLine($"{c.Measured.Scheduling} {c.Measured.TokensPerSecond:F0} tok/s vs {c.Baseline.Scheduling} {c.Baseline.TokensPerSecond:F0} tok/s: " +
            $"{c.Ratio:F2}x; first token p50/p95 {c.Measured.TimeToFirstTokenP50Seconds * 1000:F0}/{c.Measured.TimeToFirstTokenP95Seconds * 1000:F0} ms " +
            $"vs {c.Baseline.TimeToFirstTokenP50Seconds * 1000:F0}/{c.Baseline.TimeToFirstTokenP95Seconds * 1000:F0} ms; " +
            $"server RSS growth {c.Measured.Rss.GrowthBytes / 1048576.0:F1} MB vs {c.Baseline.Rss.GrowthBytes / 1048576.0:F1} MB");
        o.WriteLine(c.Passed ? "PASS" : "FAIL");
    }

    private static void PrintServerRss(HttpLoadReport r, TextWriter o)
    {
        static string Mb(long bytes) => $"{bytes / 1048576.0:F1}";
        var t = r.Rss;
        o.WriteLine($"server RSS MB start {Mb(t.StartBytes)}, after warm-up {Mb(t.WarmBytes)}, end {Mb(t.EndBytes)}, range {Mb(t.MinAfterWarmupBytes)}..{Mb(t.MaxAfterWarmupBytes)}; " +
            $"trend {t.SlopeBytesPerSecond / 1048576.0 * 60:+0.00;-0.00} MB/min over {t.SamplesAfterWarmup} samples = {Mb(t.GrowthBytes)} MB growth: {(t.Flat ? "flat" : "GROWING")} (limit {Mb(t.MaxGrowthBytes)} MB)");
    }
}
