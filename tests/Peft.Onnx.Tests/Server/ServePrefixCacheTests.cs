using System.Net;
using System.Text.Json.Nodes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Server;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>`serve`'s prefix cache over HTTP: a repeated prompt hits (counted on /metrics) and answers as generate does; 0 disables it.</summary>
public class ServePrefixCacheTests
{
    private static JsonObject Completion(string model, string prompt, int tokens, int? seed) => seed is { } s
        ? new JsonObject { ["model"] = model, ["prompt"] = prompt, ["max_tokens"] = tokens, ["temperature"] = 0.8, ["seed"] = s }
        : new JsonObject { ["model"] = model, ["prompt"] = prompt, ["max_tokens"] = tokens, ["temperature"] = 0 };

    [Theory]
    [InlineData(64, 2)]
    [InlineData(0, 0)]
    public async Task A_repeated_prompt_hits_the_cache_and_answers_as_generate(int megabytes, int hits)
    {
        var dir = ExportedModels.Folder("tiny-gpt2-random");
        var reference = ExportedModels.Model("tiny-gpt2-random");
        await using var server = await ServeHost.StartAsync(new ServeOptions(dir, DeviceOptions.Cpu, Port: 0) { PrefixCacheMb = megabytes }, TextWriter.Null);
        using var http = new HttpClient { BaseAddress = server.Address };
        (string Prompt, int Tokens, int? Seed)[] requests = [("the same prompt", 6, null), ("the same prompt", 8, 5), ("the same prompt", 4, null), ("another one", 5, null)];
        foreach (var (prompt, tokens, seed) in requests)
        {
            var (status, body, _) = await ServeClient.PostAsync(http, "/v1/completions", Completion(Path.GetFileName(Path.TrimEndingDirectorySeparator(dir)), prompt, tokens, seed));
            Assert.Equal(HttpStatusCode.OK, status);
            var options = seed is { } s ? GenerationOptions.Sampling(seed: (ulong)s, temperature: 0.8, maxNewTokens: tokens) : GenerationOptions.Greedy(tokens);
            Assert.Equal(reference.Generate(GenerationRequest.FromText(prompt, options)).NewTokens[0], ServeClient.Ids(body!["choices"]![0]!["token_ids"]));
        }
        var page = await http.GetStringAsync("/metrics");
        if (megabytes == 0) Assert.DoesNotContain("peft_onnx_prefix_cache", page);
        else
        {
            Assert.Contains($"peft_onnx_prefix_cache_lookups_total{{result=\"hit\"}} {hits}\n", page);
            Assert.Contains("peft_onnx_prefix_cache_lookups_total{result=\"miss\"} 2\n", page);
            Assert.Matches(@"peft_onnx_prefix_cache_bytes [1-9]\d*\n", page);
        }
        Assert.Matches(@"peft_onnx_batch_seconds_total\{phase=""decode""\} (0\.\d*[1-9]|[1-9])", page);
    }

    [Fact]
    public void A_negative_size_is_refused_naming_the_option()
    {
        var r = CliRunner.Run("serve", "--onnx", ExportedModels.Folder("tiny-gpt2-random"), "--port", "0", "--prefix-cache-mb", "-1");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("prefix-cache-mb", r.Stderr);
    }
}
