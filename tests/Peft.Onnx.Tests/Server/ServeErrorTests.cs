using Peft.Onnx.Tests.Support;
using System.Net;
using System.Text.Json.Nodes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Server;
using Peft.Onnx.Tests.Runtime;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// Bad requests get OpenAI's error object with the right status and never disturb the server or other requests:
/// malformed JSON and wrong types (400), unknown model (404), bad max_tokens and context overflow (400), body too
/// large (413), queue full (429 with Retry-After), missing or wrong key (401), chat without a template (400).
/// </summary>
public class ServeErrorTests(ServeFixture fixture) : IClassFixture<ServeFixture>
{
    private JsonObject Valid() => new() { ["model"] = fixture.Name, ["prompt"] = "Hello", ["max_tokens"] = 4, ["temperature"] = 0 };

    [Theory]
    [InlineData("{\"model\": ", null)]
    [InlineData("[1, 2]", null)]
    [InlineData("{\"prompt\": \"x\"}", "model")]
    [InlineData("{\"model\": 5, \"prompt\": \"x\"}", "model")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"max_tokens\": \"many\"}", "max_tokens")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"max_tokens\": 0}", "max_tokens")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"max_tokens\": -3}", "max_tokens")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"temperature\": \"hot\"}", "temperature")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"top_p\": 0}", "top_p")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"stream\": \"yes\"}", "stream")]
    [InlineData("{\"model\": \"M\", \"prompt\": {\"a\": 1}}", "prompt")]
    [InlineData("{\"model\": \"M\", \"prompt\": [1, 99999]}", "prompt")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"stop\": [1]}", "stop")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"n\": 2}", "n")]
    [InlineData("{\"model\": \"M\", \"prompt\": \"x\", \"max_tokens\": 200}", "max_tokens")]
    public async Task Bad_completion_requests_are_400_with_the_field(string body, string? param)
    {
        var (status, json, _) = await ServeClient.PostAsync(fixture.Http, "/v1/completions", body.Replace("\"M\"", $"\"{fixture.Name}\""));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = ServeClient.AssertError(json, param);
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Prompt_and_max_tokens_beyond_the_context_is_400_naming_it()
    {
        var body = Valid();
        body["prompt"] = new JsonArray(Enumerable.Range(0, 120).Select(i => (JsonNode)(3 + i)).ToArray());
        body["max_tokens"] = 9;
        var (status, json, _) = await ServeClient.PostAsync(fixture.Http, "/v1/completions", body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = ServeClient.AssertError(json, "max_tokens", "context_length_exceeded");
        Assert.Contains("128", error["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Unknown_model_is_404_and_a_path_is_never_opened()
    {
        foreach (var name in new[] { "gpt-4", "../../etc", fixture.Folder })
        {
            var body = Valid();
            body["model"] = name;
            var (status, json, _) = await ServeClient.PostAsync(fixture.Http, "/v1/completions", body);
            Assert.Equal(HttpStatusCode.NotFound, status);
            ServeClient.AssertError(json, "model", "model_not_found");
        }
    }

    [Fact]
    public async Task Body_over_the_limit_is_413()
    {
        var body = Valid();
        body["prompt"] = new string('a', 2 << 20);
        var (status, json, _) = await ServeClient.PostAsync(fixture.Http, "/v1/completions", body.ToJsonString(), expectContinue: true);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        ServeClient.AssertError(json);
    }

    [Fact]
    public async Task Unknown_endpoint_is_404_with_the_error_object()
    {
        var response = await fixture.Http.GetAsync("/v1/engines");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        ServeClient.AssertError(JsonNode.Parse(await response.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task Full_queue_is_429_with_retry_after()
    {
        await using var server = await ServeFixture.Start(new ServeOptions(fixture.Folder, DeviceOptions.Cpu, Port: 0, MaxQueue: 0));
        using var http = new HttpClient { BaseAddress = server.Address };
        var (status, json, response) = await ServeClient.PostAsync(http, "/v1/completions", Valid());
        Assert.Equal((HttpStatusCode)429, status);
        Assert.NotNull(response.Headers.RetryAfter);
        ServeClient.AssertError(json, code: "queue_full");
    }

    [Fact]
    public async Task Api_key_is_required_everywhere_but_health()
    {
        await using var server = await ServeFixture.Start(new ServeOptions(fixture.Folder, DeviceOptions.Cpu, Port: 0, ApiKey: "sesame"));
        using var http = new HttpClient { BaseAddress = server.Address };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
        var models = await http.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, models.StatusCode);
        ServeClient.AssertError(JsonNode.Parse(await models.Content.ReadAsStringAsync()), code: "invalid_api_key");
        var (missing, json, _) = await ServeClient.PostAsync(http, "/v1/completions", Valid());
        Assert.Equal(HttpStatusCode.Unauthorized, missing);
        ServeClient.AssertError(json, code: "invalid_api_key");
        Assert.Equal(HttpStatusCode.Unauthorized, (await ServeClient.PostAsync(http, "/v1/completions", Valid(), key: "open")).Status);
        Assert.Equal(HttpStatusCode.OK, (await ServeClient.PostAsync(http, "/v1/completions", Valid(), key: "sesame")).Status);
    }

    [Fact]
    public async Task Chat_on_a_folder_without_a_template_is_400_naming_what_is_missing()
    {
        await using var server = await ServeFixture.Start(new ServeOptions(ExportedModels.Folder("tiny-gpt2-random"), DeviceOptions.Cpu, Port: 0));
        using var http = new HttpClient { BaseAddress = server.Address };
        var name = Path.GetFileName(ExportedModels.Folder("tiny-gpt2-random"));
        var body = new JsonObject { ["model"] = name, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }) };
        var (status, json, _) = await ServeClient.PostAsync(http, "/v1/chat/completions", body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = ServeClient.AssertError(json, "messages", "chat_template_missing");
        Assert.Contains("chat_template", error["message"]!.GetValue<string>());
        Assert.Contains("tokenizer_config.json", error["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_flood_of_bad_requests_leaves_good_ones_exact()
    {
        var expected = fixture.Reference.Generate(GenerationRequest.FromText("Hello", GenerationOptions.Greedy(4))).NewTokens[0];
        string[] bad = ["{", "{\"model\": 1}", "{\"model\": \"nope\", \"prompt\": \"x\"}", $"{{\"model\": \"{fixture.Name}\", \"prompt\": \"x\", \"max_tokens\": 0}}", "null"];
        var floods = Enumerable.Range(0, 200).Select(i => ServeClient.PostAsync(fixture.Http, "/v1/completions", bad[i % bad.Length])).ToList();
        var goods = Enumerable.Range(0, 8).Select(_ => ServeClient.PostAsync(fixture.Http, "/v1/completions", Valid())).ToList();
        foreach (var f in await Task.WhenAll(floods))
        {
            Assert.True((int)f.Status is 400 or 404, $"a bad request got {f.Status}");
            ServeClient.AssertError(f.Body);
        }
        foreach (var g in await Task.WhenAll(goods))
        {
            Assert.Equal(HttpStatusCode.OK, g.Status);
            Assert.Equal(expected, ServeClient.Ids(g.Body!["choices"]![0]!["token_ids"]));
        }
        Assert.Equal(HttpStatusCode.OK, (await fixture.Http.GetAsync("/health")).StatusCode);
    }
}
