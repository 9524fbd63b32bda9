using System.Net;
using System.Text.Json.Nodes;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Server;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// Which exports the server batches continuously (stderr names the mode and why): a baked prefix on BLOOM joins the
/// batch, a baked prompt on GPT-2 and an encoder-decoder run per request; concurrent answers equal the Runtime's alone
/// in either mode.
/// </summary>
public class ServeExportKindTests
{
    [Theory]
    [InlineData("bloom", "prefix", "continuous scheduling")]
    [InlineData("gpt2", "prompt_tuning_text", "per-request scheduling")]
    [InlineData("tiny-t5-fin", null, "per-request scheduling")]
    public async Task Each_export_kind_is_served_in_its_mode_with_the_answers_of_the_runtime(string arch, string? method, string mode)
    {
        var model = method == null ? ExportedModels.Model(arch) : ExportedModels.Adapter(arch, method, new ExportOptions { Verify = false });
        var log = new StringWriter();
        await using var server = await ServeHost.StartAsync(new ServeOptions(model.Directory, DeviceOptions.Cpu, Port: 0, MaxBatchSize: 3), log);
        Assert.Contains(mode, log.ToString());
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(2) };
        var name = JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!.GetValue<string>();
        // five prompts of different lengths on three rows: some join while others run
        int[][] prompts = [[5, 9, 13], [7], [11, 4, 8, 20, 6, 3, 9], [30, 31], [12, 14, 16, 18]];
        var answers = await Task.WhenAll(prompts.Select(async p =>
        {
            var body = new JsonObject { ["model"] = name, ["prompt"] = new JsonArray(p.Select(i => (JsonNode)i).ToArray()), ["max_tokens"] = 7, ["temperature"] = 0 };
            var (status, json, _) = await ServeClient.PostAsync(http, "/v1/completions", body);
            Assert.Equal(HttpStatusCode.OK, status);
            return ServeClient.Ids(json!["choices"]![0]!["token_ids"]);
        }));
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(model.Generate(GenerationRequest.FromIds(prompts[i], GenerationOptions.Greedy(7))).NewTokens[0], answers[i]);
    }
}
