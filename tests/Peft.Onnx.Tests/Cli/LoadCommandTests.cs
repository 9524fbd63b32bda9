using System.Text.Json;
using Peft.Onnx.Bench.Load;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>
/// `load`: a short run of concurrent text requests on tiny-bloom-fin's export (the 2-minute, 64-caller run is the command
/// itself, not a test), the RSS trend that judges it, and its refusals before any compute.
/// </summary>
public class LoadCommandTests
{
    [Fact]
    public void Short_run_equals_the_sequential_answers_and_records_the_series()
    {
        var dir = Paths.TempDir();
        try
        {
            var plot = Path.Combine(dir, "rss.png");
            var r = CliRunner.Run("load", "--onnx", ExportedModels.Folder("tiny-bloom-fin"), "--concurrency", "8", "--duration", "3",
                "--prompt-length", "8", "--new-tokens", "6", "--prompts", "6", "--cancel-fraction", "0.3", "--sample-interval", "0.1",
                "--warmup-fraction", "0.1", "--device", "cpu", "--plot", plot, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            Assert.Single(r.Stdout.Trim().Split('\n'));
            var json = JsonDocument.Parse(r.Stdout).RootElement;

            Assert.Equal("text", json.GetProperty("prompt_kind").GetString());
            Assert.Equal(8, json.GetProperty("concurrency").GetInt32());
            Assert.Equal(0, json.GetProperty("mismatches").GetInt64());
            Assert.Equal(0, json.GetProperty("errors").GetInt64());
            Assert.Equal(0, json.GetProperty("slow_cancels").GetInt64());
            Assert.Equal(0, json.GetProperty("late_steps").GetInt64());
            Assert.True(json.GetProperty("passed").GetBoolean());
            Assert.Empty(json.GetProperty("failures").EnumerateArray());
            long completed = json.GetProperty("completed").GetInt64();
            Assert.True(completed > 0);
            Assert.Equal(6 * completed, json.GetProperty("tokens").GetInt64());
            // every request either completed or was cancelled; a stream is cancelled after k < 6 of its tokens, so some are
            Assert.Equal(json.GetProperty("requests").GetInt64(), completed + json.GetProperty("cancelled").GetInt64());
            Assert.True(json.GetProperty("cancelled").GetInt64() > 0, r.Stdout);
            Assert.Equal(json.GetProperty("cancel_requested").GetInt64(),
                json.GetProperty("cancelled").GetInt64() + json.GetProperty("completed_before_cancel").GetInt64());
            Assert.Equal(8, json.GetProperty("max_in_flight").GetInt32());
            foreach (var api in new[] { "generate", "generate_async", "stream", "generator" })
                Assert.True(json.GetProperty("requests_by_api").GetProperty(api).GetInt32() > 0, api);
            Assert.True(json.GetProperty("latency_p95_seconds").GetDouble() >= json.GetProperty("latency_p50_seconds").GetDouble());

            // a sampler starved of CPU on a busy machine samples less often than asked, hence the loose count
            var samples = json.GetProperty("samples").EnumerateArray().ToList();
            Assert.True(samples.Count >= RssTrend.MinSamples + 2, $"{samples.Count} samples");
            var times = samples.Select(s => s.GetProperty("t_seconds").GetDouble()).ToList();
            Assert.Equal(times.Order(), times);
            Assert.True(times[^1] >= 3);
            foreach (var s in samples)
            {
                Assert.True(s.GetProperty("rss_bytes").GetInt64() > 10 << 20);
                Assert.True(s.GetProperty("managed_heap_bytes").GetInt64() > 0);
            }
            Assert.Equal(completed, samples[^1].GetProperty("requests_completed").GetInt64());
            var rss = json.GetProperty("rss");
            Assert.True(rss.GetProperty("flat").GetBoolean());
            Assert.True(rss.GetProperty("samples_after_warmup").GetInt32() >= RssTrend.MinSamples);
            Assert.Equal(samples[0].GetProperty("rss_bytes").GetInt64(), rss.GetProperty("start_bytes").GetInt64());
            Assert.True(new FileInfo(plot).Length > 1000);
        }
        finally { Directory.Delete(dir, true); }
    }

    private static LoadSample Sample(double t, double rssMb) => new(t, (long)(rssMb * 1048576), 1 << 20, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    [Fact]
    public void Trend_is_flat_for_a_sawtooth_and_growing_for_a_slope()
    {
        // warm-up climbs 100 -> 200 MB, then a +-10 MB saw with no drift: flat
        var saw = Enumerable.Range(0, 100).Select(i => Sample(i, i < 20 ? 100 + 5 * i : 200 + (i % 2 == 0 ? 10 : -10))).ToList();
        var flat = RssTrend.Fit(saw, warmupSeconds: 20, untilSeconds: 99, maxGrowthBytes: 4L << 20);
        Assert.True(flat.Flat);
        Assert.Equal(100L << 20, flat.StartBytes);
        Assert.Equal(210L << 20, flat.WarmBytes);
        Assert.Equal(190L << 20, flat.MinAfterWarmupBytes);
        Assert.Equal(210L << 20, flat.MaxAfterWarmupBytes);
        Assert.Equal(80, flat.SamplesAfterWarmup);
        Assert.True(Math.Abs(flat.GrowthBytes) < 1L << 20, $"{flat.GrowthBytes}");

        // 0.5 MB/s after warm-up: 39.5 MB over 79 s, beyond a 32 MB limit
        var leak = Enumerable.Range(0, 100).Select(i => Sample(i, i < 20 ? 100 : 100 + 0.5 * (i - 20))).ToList();
        var growing = RssTrend.Fit(leak, 20, 99, 32L << 20);
        Assert.False(growing.Flat);
        Assert.Equal(0.5 * 1048576, growing.SlopeBytesPerSecond, 1e-3);
        Assert.Equal((long)(39.5 * 1048576), growing.GrowthBytes);
    }

    [Fact]
    public void Trend_leaves_out_the_drain_and_refuses_too_few_samples()
    {
        // RSS falls once the load ends at 10 s; the samples after it do not hide the growth before it
        var series = Enumerable.Range(0, 15).Select(i => Sample(i, i <= 10 ? 100 + 2 * i : 50)).ToList();
        var trend = RssTrend.Fit(series, 2, 10, 8L << 20);
        Assert.False(trend.Flat);
        Assert.Equal(120L << 20, trend.EndBytes);
        Assert.Equal(16L << 20, trend.GrowthBytes);

        var few = RssTrend.Fit(series.Take(4).ToList(), 2, 10, 8L << 20);
        Assert.Equal(2, few.SamplesAfterWarmup);
        Assert.False(few.Flat);
    }

    [Theory]
    [InlineData("--cancel-fraction", "1.5", "--cancel-fraction 1.5 must be in [0, 1]")]
    [InlineData("--duration", "0.2", "leaves 1 RSS samples after warm-up")]
    [InlineData("--warmup-fraction", "1", "--warmup-fraction 1 must be in [0, 1)")]
    public void Bad_settings_are_refused_before_the_model_loads(string option, string value, string message)
    {
        var r = CliRunner.Run("load", "--onnx", Paths.Models, "--sample-interval", "0.1", option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }
}
