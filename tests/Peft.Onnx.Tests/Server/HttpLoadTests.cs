using Peft.Onnx.Tests.Support;
using Peft.Onnx.Bench.Load;
using Peft.Onnx.Runtime;
using Peft.Onnx.Server;
using Peft.Onnx.Tests.Runtime;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>`load --url` drives a running server over HTTP: concurrent streamed requests, disconnects, every answer equal to the Runtime's.</summary>
public class HttpLoadTests
{
    [Fact]
    public async Task Concurrent_http_clients_get_the_sequential_answers()
    {
        var dir = ExportedModels.Folder("tiny-gpt2-random");
        await using var server = await ServeHost.StartAsync(new ServeOptions(dir, DeviceOptions.Cpu, Port: 0, MaxBatchSize: 8), TextWriter.Null);
        var settings = new LoadSettings(dir, DeviceOptions.Cpu, Concurrency: 8, DurationSeconds: 3, PromptLength: 12, NewTokens: 10, Prompts: 6,
            CancelFraction: 0.2, SampleIntervalSeconds: 0.5, WarmupFraction: 0.2, MaxRssGrowthBytes: 4L << 30, CancelDeadlineSeconds: 10, Seed: 3, ForceGc: false);
        var report = await HttpLoadRunner.RunAsync(settings, server.Address, TextWriter.Null);
        Assert.True(report.Passed, string.Join("\n", report.Failures));
        Assert.True(report.Completed > 8);
        Assert.Equal(0, report.Mismatches);
        Assert.Equal(0, report.Errors);
        Assert.True(report.Cancelled > 0);
        Assert.True(report.TimeToFirstTokenP50Seconds > 0 && report.TimeToFirstTokenP95Seconds >= report.TimeToFirstTokenP50Seconds);
        Assert.True(report.Tokens >= report.Completed * 10);
        // the server shares this test process (other tests move its memory), so the trend is only required to exist
        Assert.Equal("continuous", report.Scheduling);
        Assert.True(report.Samples.Count >= RssTrend.MinSamples + 1);
        Assert.True(report.Rss.SamplesAfterWarmup >= RssTrend.MinSamples);
        Assert.All(report.Samples, s => Assert.True(s.RssBytes > 0));
    }
}
