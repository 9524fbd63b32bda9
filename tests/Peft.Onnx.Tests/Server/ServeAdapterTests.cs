using System.ClientModel;
using System.Net;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Peft.Onnx.Runtime;
using Peft.Onnx.Server;
using Peft.Onnx.Tests.MultiAdapter;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// A multi-adapter export served: /v1/models lists the base under the folder's name and each adapter under its own;
/// a request's "model" picks the adapter; concurrent requests for different adapters share the continuous batch and
/// each equals generate with that adapter (`generate --adapter-name`); an unknown name is 404 listing the known ones.
/// </summary>
public class ServeAdapterTests
{
    private const string Template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

    /// <summary>
    /// A copy of the gpt2 multi-adapter export with a chat template and a byte-fallback tokenizer whose 1,000 ids
    /// each decode to their own text (so equal text means equal tokens).
    /// </summary>
    private static string ServedCopy()
    {
        var source = MultiAdapterExportTests.MultiExport("gpt2");
        var dir = Paths.TempDir("peft-onnx-serve-adapters");
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var tokenizer = HandWrittenTokenizerJson.LlamaStyleBpe(byteFallback: true);
        var vocab = tokenizer["model"]!["vocab"]!.AsObject();
        for (int id = vocab.Count; id < 1000; id++) vocab[$"▁w{id}"] = id;
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizer.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), new JsonObject
        {
            ["chat_template"] = Template, ["bos_token"] = "<s>", ["eos_token"] = "</s>",
        }.ToJsonString());
        return dir;
    }

    [Fact]
    public async Task Concurrent_requests_for_different_adapters_each_equal_generate_with_that_adapter()
    {
        var dir = ServedCopy();
        var baseName = Path.GetFileName(dir);
        await using var server = await ServeHost.StartAsync(new ServeOptions(dir, DeviceOptions.Cpu, Port: 0, MaxBatchSize: 4), TextWriter.Null);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(2) };
        using var reference = OnnxModel.Load(dir, DeviceOptions.Cpu);

        var models = JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        Assert.Equal(new[] { baseName, "plain", "all_linear", "dora", "with_bias", "ia3" }, models.Select(m => m!["id"]!.GetValue<string>()));
        Assert.Null(models[0]!["parent"]);
        Assert.All(models.Skip(1), m => Assert.Equal(baseName, m!["parent"]!.GetValue<string>()));

        // six chats (more than the batch's four rows, so some join while others run), the same question to each model
        string[] names = [baseName, "plain", "ia3", "dora", "all_linear", "with_bias"];
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 10 };
        var answers = await Task.WhenAll(names.Select(async name =>
        {
            var client = new ChatClient(name, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.Address, "v1") });
            ChatCompletion completion = await client.CompleteChatAsync([new UserChatMessage("hello world")], options);
            return completion.Content[0].Text;
        }));
        var prompt = reference.Encode("user: hello world\nassistant:", addSpecialTokens: false);
        var expected = names.Select(name => reference.Generate(new GenerationRequest
        {
            InputIds = [prompt], AttentionMask = [Enumerable.Repeat(1, prompt.Length).ToArray()], Options = GenerationOptions.Greedy(10),
            Adapter = name == baseName ? null : name,
        }).NewText![0]).ToArray();
        Assert.Equal(expected, answers);
        Assert.True(expected.Distinct().Count() >= 3, "the adapters should change the answers: " + string.Join(" | ", expected));

        // the completions endpoint with token ids gives generate --adapter-name's tokens
        var cli = CliRunner.Run(["generate", "--onnx", dir, "--adapter-name", "dora", "--input-ids", "4,8,15,16", "--greedy", "--max-new-tokens", "6", "--json", "--device", "cpu"]);
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var sequence = JsonNode.Parse(cli.Stdout)!["sequences"]![0]!.AsArray().Select(v => v!.GetValue<int>()).ToArray();
        var body = new JsonObject { ["model"] = "dora", ["prompt"] = new JsonArray(4, 8, 15, 16), ["max_tokens"] = 6, ["temperature"] = 0 };
        var (status, json, _) = await ServeClient.PostAsync(http, "/v1/completions", body);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(sequence[4..], ServeClient.Ids(json!["choices"]![0]!["token_ids"]));
        Assert.Equal("dora", json["model"]!.GetValue<string>());

        body["model"] = "nope";
        (status, json, _) = await ServeClient.PostAsync(http, "/v1/completions", body);
        Assert.Equal(HttpStatusCode.NotFound, status);
        var error = ServeClient.AssertError(json, "model", "model_not_found");
        foreach (var known in names) Assert.Contains(known, error["message"]!.GetValue<string>());
        try { Directory.Delete(dir, true); } catch (IOException) { }
    }
}
