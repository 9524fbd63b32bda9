using System.Text.Json.Nodes;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// The CLI contract of many adapters on one base: `export --adapter NAME=DIR ...`, `generate --adapter-name`,
/// `generate --requests F.jsonl`, `forward --adapter-name`; each answer checked against the adapter's own export.
/// </summary>
public class MultiAdapterCliTests
{
    private const string Arch = "bloom";

    [Fact]
    public void Export_writes_one_folder_with_a_manifest_naming_each_adapter()
    {
        var adapters = MultiAdapterExportTests.Adapters(Arch);
        var outDir = TempExports.FreshPath();
        try
        {
            var r = CliRunner.Run(["export", "--base", Paths.Case(Arch, "base_model"), "--adapter", $"plain={adapters[0].Dir}", "--adapter", $"ia3={adapters[4].Dir}",
                "--out", outDir, "--json"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, AdapterManifest.FileName)))!["adapters"]!.AsArray();
            Assert.Equal(["plain", "ia3"], manifest.Select(a => a!["name"]!.GetValue<string>()));
            Assert.Equal(["LORA", "IA3"], manifest.Select(a => a!["method"]!.GetValue<string>()));
            Assert.Equal(4, manifest[0]!["rank"]!.GetValue<int>());
            Assert.Equal("LORA", manifest[0]!["source_config"]!["peft_type"]!.GetValue<string>());
            // the base weights once: one model.onnx + its data, no copy per adapter
            Assert.Single(Directory.GetFiles(outDir, "*.onnx"));
        }
        finally
        {
            if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        }
    }

    [Fact]
    public void Requests_file_is_served_in_mixed_batches_as_each_request_alone()
    {
        var multi = MultiAdapterExportTests.MultiExport(Arch);
        var dir = Paths.TempDir();
        try
        {
            (string Id, int[] Ids, string? Adapter, int Max)[] requests =
                [("a", [5, 9, 13, 17], "plain", 4), ("b", [7, 8], null, 6), ("c", [21, 4, 33, 12, 9], "ia3", 3), ("d", [11, 30, 2], "dora", 5), ("e", [6, 6, 6], "plain", 2)];
            var path = Path.Combine(dir, "requests.jsonl");
            File.WriteAllLines(path, requests.Select(q => new JsonObject
            {
                ["id"] = q.Id, ["input_ids"] = new JsonArray(q.Ids.Select(i => (JsonNode)i).ToArray()), ["adapter"] = q.Adapter, ["max_new_tokens"] = q.Max,
            }.ToJsonString()));
            var r = CliRunner.Run(["generate", "--onnx", multi, "--requests", path, "--batch-size", "3", "--greedy", "--json", "--device", "cpu"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var results = JsonNode.Parse(r.Stdout)!["results"]!.AsArray();
            Assert.Equal(requests.Select(q => q.Id), results.Select(x => x!["id"]!.GetValue<string>()));
            for (int i = 0; i < requests.Length; i++)
            {
                using var single = OnnxModel.Load(MultiAdapterExportTests.SingleExport(Arch, requests[i].Adapter), DeviceOptions.Cpu);
                var alone = single.Generate(GenerationRequest.FromIds(requests[i].Ids, GenerationOptions.Greedy(requests[i].Max)));
                Assert.Equal(alone.Sequences[0], results[i]!["sequences"]![0]!.AsArray().Select(v => v!.GetValue<int>()).ToArray());
                Assert.Equal(requests[i].Adapter, results[i]!["adapter"]?.GetValue<string>());
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Generate_and_forward_take_an_adapter_name()
    {
        var multi = MultiAdapterExportTests.MultiExport(Arch);
        var r = CliRunner.Run(["generate", "--onnx", multi, "--adapter-name", "all_linear", "--input-ids", "4,8,15,16", "--greedy", "--max-new-tokens", "5", "--json", "--device", "cpu"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var single = OnnxModel.Load(MultiAdapterExportTests.SingleExport(Arch, "all_linear"), DeviceOptions.Cpu);
        var alone = single.Generate(GenerationRequest.FromIds([4, 8, 15, 16], GenerationOptions.Greedy(5)));
        Assert.Equal(alone.Sequences[0], JsonNode.Parse(r.Stdout)!["sequences"]![0]!.AsArray().Select(v => v!.GetValue<int>()).ToArray());

        var dir = Paths.TempDir();
        try
        {
            var inputs = Paths.Case(Arch, "inputs.safetensors");
            var outPath = Path.Combine(dir, "logits.safetensors");
            var f = CliRunner.Run(["forward", "--onnx", multi, "--adapter-name", "ia3", "--inputs", inputs, "--out", outPath, "--device", "cpu"]);
            Assert.True(f.ExitCode == 0, f.Stderr);
            var expected = OnnxForward.Run(MultiAdapterExportTests.SingleExport(Arch, "ia3"), ForwardBatch.Read(inputs), inputs);
            using var written = Peft.Onnx.Core.SafeTensors.SafeTensorsFile.Open(outPath);
            var batch = ForwardBatch.Read(inputs);
            var real = batch.AttentionMask.Select(m => m == 1).ToArray();
            Tolerance.AssertLogits(expected.Logits, written.ReadFloat32("logits"), (int)expected.LogitsShape[2], real);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_request_naming_an_unknown_adapter_is_refused_in_one_line()
    {
        var multi = MultiAdapterExportTests.MultiExport(Arch);
        var r = CliRunner.Run(["generate", "--onnx", multi, "--adapter-name", "nope", "--input-ids", "4,8", "--device", "cpu"]);
        Assert.NotEqual(0, r.ExitCode);
        var line = Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Contains("unknown adapter 'nope'", line);
        Assert.Contains("plain, all_linear, dora, with_bias, ia3", line);
    }
}
