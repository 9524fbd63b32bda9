using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Training;
using Xunit;

namespace Peft.Onnx.Tests.Refusals;

/// <summary>
/// The trainer and the exporter check an adapter against its base with the same code: the same adapters are
/// refused by both, with the same message, before anything is allocated or written.
/// </summary>
public sealed class AdapterFitTests
{
    /// <summary>A copy of a fixture adapter with adapter_config.json keys replaced (null removes the key) and tensors dropped.</summary>
    private static string Changed(string arch, string method, IReadOnlyDictionary<string, JsonNode?> keys, string? dropTensor = null)
    {
        var source = Paths.Case(arch, Path.Combine(method, "adapter"));
        var dir = Paths.TempDir("peft-onnx-bad-adapter");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, AdapterFormat.ConfigFile)))!.AsObject();
        foreach (var (key, value) in keys) config[key] = value?.DeepClone();
        File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), config.ToJsonString());
        using var weights = SafeTensorsFile.Open(Path.Combine(source, AdapterFormat.WeightsFile));
        SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile),
            weights.Names.Where(n => n != dropTensor).Select(n => TensorData.FromFloat32(n, weights[n].Shape, weights.ReadFloat32(n))).ToList(),
            AdapterFormat.WeightsMetadata);
        return dir;
    }

    public static TheoryData<string, string, string, string?> BadAdapters() => new()
    {
        // method, key, value (JSON), expected part of the message
        { "lora", "r", "1000000000", "but the base model needs [1000000000, 64]" },
        { "lora", "lora_alpha", "1e308", "lora_alpha = 1e+308 is invalid" },
        { "lora", "lora_alpha", "\"NaN\"", "lora_alpha = nan is invalid (expected a finite number)" },
        { "prompt_tuning_random", "num_virtual_tokens", "2000000000", "adapter_config.json implies [2000000000, 64]" },
        { "prefix", "num_virtual_tokens", "2000000000", "adapter_config.json implies [2000000000, 256]" },
        { "prefix_proj", "encoder_hidden_size", "2000000000", "encoder_hidden_size = 2000000000 is invalid" },
        { "p_tuning_mlp", "encoder_hidden_size", "2000000000", "encoder_hidden_size = 2000000000 is invalid" },
        { "lora", "dropped", "base_model.model.transformer.h.1.self_attention.query_key_value.lora_B.weight", "missing 'base_model.model.transformer.h.1.self_attention.query_key_value.lora_B.weight' [192, 4]" },
    };

    [Theory, MemberData(nameof(BadAdapters))]
    public void Trainer_and_exporter_refuse_the_same_adapter_with_the_same_message(string method, string key, string value, string? expected)
    {
        var adapter = key == "dropped"
            ? Changed("bloom", method, new Dictionary<string, JsonNode?>(), dropTensor: value)
            : Changed("bloom", method, new Dictionary<string, JsonNode?> { [key] = JsonNode.Parse(value) });
        var outDir = Path.Combine(Path.GetTempPath(), $"peft-onnx-fit-{Guid.NewGuid():N}");
        try
        {
            var clock = Stopwatch.StartNew();
            var trainer = Assert.Throws<PeftOnnxException>(() => PeftModelSource.FromAdapter(Paths.Case("bloom", "base_model"), adapter, out _, inferenceMode: true).Dispose());
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"refused after {clock.Elapsed}");
            var exporter = Assert.Throws<PeftOnnxException>(() => OnnxExport.Export(Paths.Case("bloom", "base_model"), adapter, outDir, new ExportOptions()));
            Assert.Equal(exporter.Message, trainer.Message);
            Assert.Contains(expected!, trainer.Message);
            Assert.DoesNotContain('\n', trainer.Message);
            Assert.False(Directory.Exists(outDir));
        }
        finally { Directory.Delete(adapter, true); }
    }

    [Fact]
    public void Trainer_and_exporter_both_accept_bias_all_without_the_biases()
    {
        // PEFT loads adapter weights non-strictly: trained biases the file lacks keep the base's values.
        var adapter = Changed("bloom", "lora", new Dictionary<string, JsonNode?> { ["bias"] = "all" });
        var outDir = Path.Combine(Path.GetTempPath(), $"peft-onnx-fit-{Guid.NewGuid():N}");
        try
        {
            using (var model = PeftModelSource.FromAdapter(Paths.Case("bloom", "base_model"), adapter, out _, inferenceMode: true))
                Assert.Equal("LORA", model.Config.PeftType);
            OnnxExport.Export(Paths.Case("bloom", "base_model"), adapter, outDir, new ExportOptions());
            Assert.True(Directory.Exists(outDir));
        }
        finally
        {
            Directory.Delete(adapter, true);
            if (Directory.Exists(outDir)) Directory.Delete(outDir, true);
        }
    }

    [Theory]
    [InlineData("lora", "r", "1000000000")]
    [InlineData("prompt_tuning_random", "num_virtual_tokens", "2000000000")]
    [InlineData("prefix_proj", "encoder_hidden_size", "2000000000")]
    public void Forward_refuses_sizes_the_file_does_not_bear_out_before_allocating(string method, string key, string value)
    {
        var adapter = Changed("bloom", method, new Dictionary<string, JsonNode?> { [key] = JsonNode.Parse(value) });
        var dir = Paths.TempDir();
        try
        {
            var forward = CliRunner.Run("forward", "--base", Paths.Case("bloom", "base_model"), "--adapter", adapter,
                "--inputs", Path.Combine(Paths.Case("bloom"), "inputs.safetensors"), "--out", Path.Combine(dir, "logits.safetensors"), "--device", "cpu");
            Assert.Equal(2, forward.ExitCode);
            var line = Assert.Single(forward.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error: "));
            Assert.DoesNotContain("allocate", forward.Stderr);
            var export = CliRunner.Run("export", "--base", Paths.Case("bloom", "base_model"), "--adapter", adapter, "--out", Path.Combine(dir, "onnx"));
            Assert.Equal(2, export.ExitCode);
            Assert.Equal(line, Assert.Single(export.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error: ")));
        }
        finally
        {
            Directory.Delete(adapter, true);
            Directory.Delete(dir, true);
        }
    }
}
