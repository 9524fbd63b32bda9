using System.Text.Json;
using Peft.Onnx.Bench.Load;
using Peft.Onnx.Core;
using Peft.Onnx.Server;
using Peft.Onnx.Server.Metrics;
using Peft.Onnx.Tests.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// The serve throughput comparison as a user runs it: scripts/serve-throughput.sh starts a per-request and a
/// continuous server as child processes on free ports and drives both with `load --compare-url ... --url ...`;
/// the servers' resident memory comes from their /metrics.
/// </summary>
public class ServeThroughputTests
{
    [Fact]
    public async Task Script_compares_per_request_and_continuous_servers_in_one_run()
    {
        var dir = ExportedModels.Folder("tiny-gpt2-random");
        var cli = "dotnet " + Path.Combine(AppContext.BaseDirectory, "peft-onnx.dll");
        // no timing is judged here; the RSS limit is wide because a 2-second run is mostly warm-up
        var r = await ChildProcess.RunAsync("env",
            ["PEFT_ONNX=" + cli, "bash", Path.Combine(Paths.RepoRoot, "scripts", "serve-throughput.sh"), dir, "2", "4",
             "--sample-interval", "0.2", "--prompts", "4", "--new-tokens", "8", "--max-rss-growth-mb", "4096", "--json"],
            TimeSpan.FromMinutes(3), Paths.RepoRoot);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("serve (per-request): http://127.0.0.1:", r.Stderr);
        Assert.Contains("serve (continuous): http://127.0.0.1:", r.Stderr);

        var json = JsonDocument.Parse(r.Stdout.Trim().Split('\n')[^1]).RootElement;
        var baseline = json.GetProperty("baseline");
        var measured = json.GetProperty("measured");
        Assert.Equal("per-request", baseline.GetProperty("Scheduling").GetString());
        Assert.Equal("continuous", measured.GetProperty("Scheduling").GetString());
        Assert.NotEqual(baseline.GetProperty("Url").GetString(), measured.GetProperty("Url").GetString());
        foreach (var run in new[] { baseline, measured })
        {
            Assert.True(run.GetProperty("Completed").GetInt64() > 0);
            Assert.Equal(0, run.GetProperty("Mismatches").GetInt64());
            Assert.Equal(0, run.GetProperty("Errors").GetInt64());
            Assert.True(run.GetProperty("TokensPerSecond").GetDouble() > 0);
            Assert.True(run.GetProperty("TimeToFirstTokenP95Seconds").GetDouble() >= run.GetProperty("TimeToFirstTokenP50Seconds").GetDouble());
            var samples = run.GetProperty("Samples");
            Assert.True(samples.GetArrayLength() >= RssTrend.MinSamples + 1, samples.ToString());
            // the server is another process: its RSS holds a loaded model and a web host, far above zero
            foreach (var s in samples.EnumerateArray()) Assert.True(s.GetProperty("rss_bytes").GetInt64() > 16 << 20, s.ToString());
            Assert.True(run.GetProperty("Rss").GetProperty("samples_after_warmup").GetInt32() >= RssTrend.MinSamples);
            // the server's own token counter saw at least what the client received
            Assert.True(samples[samples.GetArrayLength() - 1].GetProperty("server_tokens").GetInt64() >= run.GetProperty("Tokens").GetInt64());
        }
        double ratio = measured.GetProperty("TokensPerSecond").GetDouble() / baseline.GetProperty("TokensPerSecond").GetDouble();
        Assert.Equal(Math.Round(ratio, 2), json.GetProperty("ratio").GetDouble(), 6);
        Assert.True(json.GetProperty("passed").GetBoolean());
    }

    [Fact]
    public void Compare_url_without_url_is_refused_naming_both()
    {
        var r = CliRunner.Run("load", "--onnx", ExportedModels.Folder("tiny-gpt2-random"), "--compare-url", "http://127.0.0.1:1", "--duration", "5");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--compare-url needs --url", r.Stderr);
    }

    [Fact]
    public void Batching_modes_parse_and_others_are_refused()
    {
        Assert.True(ServeOptions.ParseBatching(null));
        Assert.True(ServeOptions.ParseBatching("continuous"));
        Assert.False(ServeOptions.ParseBatching("per-request"));
        var ex = Assert.Throws<PeftOnnxException>(() => ServeOptions.ParseBatching("static"));
        Assert.Contains("--batching 'static'", ex.Message);
        Assert.Contains("continuous or per-request", ex.Message);
    }

    [Fact]
    public void Serve_refuses_an_unknown_batching_mode_before_loading()
    {
        var r = CliRunner.Run("serve", "--onnx", ExportedModels.Folder("tiny-gpt2-random"), "--port", "0", "--batching", "dynamic");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--batching 'dynamic'", r.Stderr);
    }

    [Fact]
    public async Task Per_request_server_names_its_mode_and_resident_memory_in_metrics()
    {
        var dir = ExportedModels.Folder("tiny-gpt2-random");
        await using var server = await ServeHost.StartAsync(new ServeOptions(dir, Peft.Onnx.Runtime.DeviceOptions.Cpu, Port: 0) { ContinuousBatching = false }, TextWriter.Null);
        using var http = new HttpClient { BaseAddress = server.Address };
        var page = await http.GetStringAsync("/metrics");
        Assert.Contains("peft_onnx_scheduling{mode=\"per-request\"} 1\n", page);
        var parsed = ServerMetricsText.Parse(page, server.Address);
        Assert.Equal("per-request", parsed.Mode);
        // the server runs in this process here: its figure is this process's VmRSS, read independently
        long vmRss = long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        Assert.InRange(parsed.RssBytes, vmRss / 2, vmRss * 2);
    }

    [Fact]
    public void Metrics_page_reads_back_tokens_mode_and_memory()
    {
        var metrics = new ServerMetrics();
        metrics.CountTokens(17);
        metrics.CountTokens(5);
        var parsed = ServerMetricsText.Parse(metrics.Render(3, 2, "continuous"), new Uri("http://127.0.0.1:1/"));
        Assert.Equal(22, parsed.Tokens);
        Assert.Equal("continuous", parsed.Mode);
        Assert.Equal(Environment.WorkingSet, parsed.RssBytes, (double)(64 << 20));
    }

    [Fact]
    public void A_page_without_resident_memory_is_refused_naming_the_line()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => ServerMetricsText.Parse("peft_onnx_generated_tokens_total 4\n", new Uri("http://127.0.0.1:9/")));
        Assert.Contains("process_resident_memory_bytes", ex.Message);
        Assert.Contains("http://127.0.0.1:9/metrics", ex.Message);
    }
}
