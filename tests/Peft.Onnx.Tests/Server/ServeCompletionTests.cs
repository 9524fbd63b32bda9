using System.Net;
using System.Text.Json.Nodes;
using Peft.Onnx.Runtime;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// /health, /v1/models and /v1/completions over real HTTP: every answer equals the Runtime's answer for the request
/// alone (greedy token for token, seeded sampling the same tokens), whoever else is in the batch.
/// </summary>
public class ServeCompletionTests(ServeFixture fixture) : IClassFixture<ServeFixture>
{
    [Fact]
    public async Task Health_and_models()
    {
        var health = await fixture.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var models = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", models["object"]!.GetValue<string>());
        var only = Assert.Single(models["data"]!.AsArray());
        Assert.Equal(fixture.Name, only!["id"]!.GetValue<string>());
        Assert.Equal("model", only["object"]!.GetValue<string>());
    }

    [Fact]
    public async Task Greedy_text_completion_equals_generate()
    {
        var expected = fixture.Reference.Generate(GenerationRequest.FromText("Once upon a time", GenerationOptions.Greedy(12)));
        var (status, body, _) = await ServeClient.PostAsync(fixture.Http, "/v1/completions",
            new JsonObject { ["model"] = fixture.Name, ["prompt"] = "Once upon a time", ["max_tokens"] = 12, ["temperature"] = 0 });
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body!["choices"]![0]!;
        Assert.Equal(expected.NewTokens[0], ServeClient.Ids(choice["token_ids"]));
        Assert.Equal(expected.NewText![0], choice["text"]!.GetValue<string>());
        Assert.Equal(expected.NewTokens[0].Length == 12 ? "length" : "stop", choice["finish_reason"]!.GetValue<string>());
        Assert.Equal(fixture.Reference.Encode("Once upon a time").Length, body["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(expected.NewTokens[0].Length, body["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal("text_completion", body["object"]!.GetValue<string>());
    }

    [Fact]
    public async Task Concurrent_mixed_requests_each_equal_their_request_alone()
    {
        var random = new Random(5);
        var cases = Enumerable.Range(0, 12).Select(i =>
        {
            var ids = Enumerable.Range(0, 2 + random.Next(20)).Select(_ => random.Next(3, 1000)).ToArray();
            int maxTokens = 3 + random.Next(15);
            bool sample = i % 3 == 1;
            var body = new JsonObject
            {
                ["model"] = fixture.Name, ["prompt"] = new JsonArray(ids.Select(x => (JsonNode)x).ToArray()), ["max_tokens"] = maxTokens,
                ["temperature"] = sample ? 0.7 : 0,
            };
            var options = sample ? GenerationOptions.Sampling(seed: (ulong)(100 + i), temperature: 0.7, maxNewTokens: maxTokens) : GenerationOptions.Greedy(maxTokens);
            if (sample) { body["seed"] = 100 + i; body["top_p"] = 0.9; options = options with { TopP = 0.9 }; }
            return (Body: body, Expected: fixture.Reference.Generate(GenerationRequest.FromIds(ids, options)).NewTokens[0]);
        }).ToList();
        var answers = await Task.WhenAll(cases.Select(c => ServeClient.PostAsync(fixture.Http, "/v1/completions", c.Body)));
        for (int i = 0; i < cases.Count; i++)
        {
            Assert.Equal(HttpStatusCode.OK, answers[i].Status);
            Assert.Equal(cases[i].Expected, ServeClient.Ids(answers[i].Body!["choices"]![0]!["token_ids"]));
        }
    }

    [Fact]
    public async Task Streamed_completion_equals_the_whole_answer_and_ends_with_done()
    {
        var body = new JsonObject { ["model"] = fixture.Name, ["prompt"] = "The weather today", ["max_tokens"] = 10, ["temperature"] = 0 };
        var (_, whole, _) = await ServeClient.PostAsync(fixture.Http, "/v1/completions", body);
        var streamBody = body.DeepClone().AsObject();
        streamBody["stream"] = true;
        streamBody["stream_options"] = new JsonObject { ["include_usage"] = true };
        var events = await ServeClient.StreamAsync(fixture.Http, "/v1/completions", streamBody);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        var withChoices = chunks.Where(c => c["choices"]!.AsArray().Count > 0).ToList();
        Assert.True(withChoices.Count >= 2);
        var text = string.Concat(withChoices.Select(c => c["choices"]![0]!["text"]!.GetValue<string>()));
        var ids = withChoices.SelectMany(c => ServeClient.Ids(c["choices"]![0]!["token_ids"])).ToArray();
        Assert.Equal(whole!["choices"]![0]!["text"]!.GetValue<string>(), text);
        Assert.Equal(ServeClient.Ids(whole["choices"]![0]!["token_ids"]), ids);
        Assert.Equal(whole["choices"]![0]!["finish_reason"]!.GetValue<string>(), withChoices[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(ids.Length, chunks[^1]["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Stop_sequence_cuts_the_text_before_it()
    {
        var body = new JsonObject { ["model"] = fixture.Name, ["prompt"] = "One two three", ["max_tokens"] = 16, ["temperature"] = 0 };
        var (_, whole, _) = await ServeClient.PostAsync(fixture.Http, "/v1/completions", body);
        var text = whole!["choices"]![0]!["text"]!.GetValue<string>();
        Assert.True(text.Length >= 4, $"the reference text '{text}' is too short to cut");
        var stop = text.Substring(text.Length / 2, 2);
        body["stop"] = stop;
        var (_, cut, _) = await ServeClient.PostAsync(fixture.Http, "/v1/completions", body);
        var cutText = cut!["choices"]![0]!["text"]!.GetValue<string>();
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], cutText);
        Assert.Equal("stop", cut["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_client_that_disconnects_frees_its_row_within_a_step()
    {
        var body = new JsonObject { ["model"] = fixture.Name, ["prompt"] = "Count with me", ["max_tokens"] = 100, ["temperature"] = 0, ["stream"] = true };
        using (var cts = new CancellationTokenSource())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
            using var response = await fixture.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
            Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token));
            cts.Cancel();
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var metrics = await fixture.Http.GetStringAsync("/metrics");
            if (metrics.Contains("peft_onnx_running_rows 0\n")) break;
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), "the disconnected row is still running");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task Metrics_in_prometheus_text_format()
    {
        await ServeClient.PostAsync(fixture.Http, "/v1/completions", new JsonObject { ["model"] = fixture.Name, ["prompt"] = "Hi", ["max_tokens"] = 3, ["temperature"] = 0 });
        var text = await fixture.Http.GetStringAsync("/metrics");
        Assert.Contains("# TYPE peft_onnx_requests_total counter", text);
        Assert.Contains("peft_onnx_requests_total{endpoint=\"/v1/completions\",status=\"200\"}", text);
        Assert.Matches(@"peft_onnx_generated_tokens_total [1-9]\d*\n", text);
        Assert.Contains("peft_onnx_queue_depth ", text);
        Assert.Matches(@"peft_onnx_time_to_first_token_seconds_count [1-9]\d*\n", text);
        Assert.Contains("peft_onnx_batch_occupancy_bucket{le=\"+Inf\"}", text);
    }
}
