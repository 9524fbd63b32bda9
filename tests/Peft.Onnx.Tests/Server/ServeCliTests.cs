using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Server;
using Peft.Onnx.Tests.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// `peft-onnx serve` as a user runs it: --help lists every option, --port 0 prints the address on stderr, a request
/// in flight when SIGTERM arrives still gets its whole answer, and the process exits 0. Encoder-decoder exports are
/// served one generator per request, with the same exact answers.
/// </summary>
public class ServeCliTests
{
    [Fact]
    public void Help_lists_every_option()
    {
        var r = CliRunner.Run("serve", "--help");
        Assert.True(r.ExitCode == 0, r.Stderr);
        foreach (var option in new[] { "--onnx", "--host", "--port", "--api-key", "--max-batch-size", "--max-queue", "--batching", "--device" })
            Assert.Contains(option, r.Stdout);
    }

    [Fact]
    public async Task Port_0_prints_the_address_and_sigterm_drains_then_exits_0()
    {
        var dir = ExportedModels.Folder("tiny-gpt2-random");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "peft-onnx.dll"), "serve", "--onnx", dir, "--port", "0", "--device", "cpu" }) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        try
        {
            string? address = null;
            var stderr = new List<string>();
            var watch = Stopwatch.StartNew();
            while (address == null)
            {
                var line = await process.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
                Assert.True(line != null, "serve ended before listening: " + string.Join('\n', stderr));
                stderr.Add(line!);
                var at = line!.IndexOf("listening on http://", StringComparison.Ordinal);
                if (at >= 0) address = line[(at + "listening on ".Length)..].Split(' ')[0];
            }
            var drainStderr = process.StandardError.ReadToEndAsync();
            using var http = new HttpClient { BaseAddress = new Uri(address + "/") };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
            var name = Path.GetFileName(dir);
            var body = new JsonObject { ["model"] = name, ["prompt"] = new JsonArray(5, 6, 7), ["max_tokens"] = 60, ["temperature"] = 0, ["stream"] = true };
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var first = await reader.ReadLineAsync();
            Assert.StartsWith("data: ", first);
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
            var rest = await reader.ReadToEndAsync();
            Assert.EndsWith("data: [DONE]", rest.TrimEnd());
            var ids = (first + "\n" + rest).Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
                .SelectMany(l => ServeClient.Ids(JsonNode.Parse(l["data: ".Length..])!["choices"]![0]!["token_ids"])).ToArray();
            var expected = ExportedModels.Model("tiny-gpt2-random").Generate(GenerationRequest.FromIds([5, 6, 7], GenerationOptions.Greedy(60))).NewTokens[0];
            Assert.Equal(expected, ids);
            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(60)), "serve did not exit after SIGTERM");
            Assert.True(process.ExitCode == 0, await drainStderr);
        }
        finally
        {
            if (!process.HasExited) process.Kill(true);
        }
    }

    [Fact]
    public async Task Encoder_decoder_export_is_served_per_request_with_exact_answers()
    {
        var dir = ExportedModels.Folder("tiny-t5-fin");
        var log = new StringWriter();
        await using var server = await ServeHost.StartAsync(new ServeOptions(dir, DeviceOptions.Cpu, Port: 0), log);
        Assert.Contains("one generator per request", log.ToString());
        using var http = new HttpClient { BaseAddress = server.Address };
        var model = ExportedModels.Model("tiny-t5-fin");
        string[] prompts = ["translate English to German: The house is small.", "summarize: Net sales rose by ten percent."];
        var answers = await Task.WhenAll(prompts.Select(p => ServeClient.PostAsync(http, "/v1/completions",
            new JsonObject { ["model"] = Path.GetFileName(dir), ["prompt"] = p, ["max_tokens"] = 8, ["temperature"] = 0 })));
        for (int i = 0; i < prompts.Length; i++)
        {
            var expected = model.Generate(GenerationRequest.FromText(prompts[i], GenerationOptions.Greedy(8)));
            Assert.Equal(expected.NewTokens[0], ServeClient.Ids(answers[i].Body!["choices"]![0]!["token_ids"]));
            Assert.Equal(expected.NewText![0], answers[i].Body!["choices"]![0]!["text"]!.GetValue<string>());
        }
    }
}
