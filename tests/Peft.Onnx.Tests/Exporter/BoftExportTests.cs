using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Verification;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// BOFT beyond the fixtures (block counts, butterfly factors, targets, seeds: a random adapter saved by the trainer,
/// exported merged, and compared against the trainer's unmerged forward, libtorch's solve and matmuls against the
/// exporter's loops), and the BOFT adapters both the trainer and the exporter refuse with the same one-line message.
/// </summary>
public class BoftExportTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Shapes() => new()
    {
        // two butterfly factors on every linear of the blocks (fc1 has 64 inputs, fc2 128)
        { "opt", """{"peft_type": "BOFT", "boft_block_size": 8, "boft_block_num": 0, "boft_n_butterfly_factor": 2, "init_weights": false, "target_modules": ["q_proj", "k_proj", "out_proj", "fc1", "fc2"]}""" },
        // a block count, three factors
        { "llama", """{"peft_type": "BOFT", "boft_block_size": 0, "boft_block_num": 8, "boft_n_butterfly_factor": 3, "init_weights": false, "target_modules": ["q_proj", "o_proj", "down_proj"]}""" },
        // an encoder-decoder, one factor, small blocks
        { "t5", """{"peft_type": "BOFT", "boft_block_size": 4, "boft_block_num": 0, "boft_n_butterfly_factor": 1, "init_weights": false, "target_modules": ["k", "wo"]}""" },
        { "bloom", """{"peft_type": "BOFT", "boft_block_size": 16, "boft_block_num": 0, "boft_n_butterfly_factor": 2, "init_weights": false, "target_modules": ["dense_h_to_4h", "dense_4h_to_h"]}""" },
    };

    [Theory, MemberData(nameof(Shapes))]
    public void Export_matches_the_trainers_adapted_model(string arch, string configJson)
    {
        var adapterDir = Paths.TempDir("peft-onnx-boft-shape");
        var onnxDir = TempExports.FreshPath();
        try
        {
            var config = AdapterConfig.Parse(System.Text.Encoding.UTF8.GetBytes(configJson), "adapter_config.json") with
            {
                TaskType = arch is "t5" ? AdapterConfig.Seq2SeqLm : AdapterConfig.CausalLm,
            };
            using (var model = PeftModel.Create(ModelLoader.Load(Paths.Case(arch, "base_model")), config, seed: 11))
                model.Save(adapterDir);
            OnnxExport.Export(Paths.Case(arch, "base_model"), adapterDir, onnxDir, new ExportOptions());
            var report = CompareRunner.Run(new CompareRequest(Paths.Case(arch, "base_model"), adapterDir, onnxDir,
                Path.Combine(Paths.Case(arch), "inputs.safetensors"), null, null, null, null, null, null, 4, "cpu"), TextWriter.Null);
            output.WriteLine($"{arch} BOFT: max |diff| {report.MaxAbsDiff:g3} (tolerance {report.Tolerance:g3}, logit std {report.AdaptedLogitStd:g3}), greedy {report.GenerationsEqual}/{report.Generations}");
            Assert.True(report.AdaptedLogitStd > 0);
            Assert.True(report.Passed, $"max |diff| {report.MaxAbsDiff} > {report.Tolerance}");
            Assert.Equal(report.Generations, report.GenerationsEqual);
            if (arch != "t5")
            {
                using var baseReference = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch), "base_reference.safetensors"));
                var effect = baseReference.ReadFloat32("logits").Zip(AdapterExportParity.FixtureLogits(arch, onnxDir), (b, a) => Math.Abs(a - b)).Max();
                output.WriteLine($"{arch} BOFT: adapter effect max |logit change| {effect:g3}");
                Assert.True(effect > 0.05, $"adapter effect {effect}");
            }
        }
        finally
        {
            Directory.Delete(adapterDir, true);
            if (Directory.Exists(onnxDir)) Directory.Delete(onnxDir, true);
        }
    }

    /// <summary>A copy of the bloom BOFT fixture adapter with config keys replaced (null removes the key) and one tensor reshaped.</summary>
    private static string Changed(IReadOnlyDictionary<string, JsonNode?> keys, (string Name, long[] Shape)? reshaped = null)
    {
        var source = Paths.CurrentCase("bloom", "boft/adapter");
        var dir = Paths.TempDir("peft-onnx-bad-boft");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, AdapterFormat.ConfigFile)))!.AsObject();
        foreach (var (key, value) in keys)
        {
            if (value is null) config.Remove(key);
            else config[key] = value.DeepClone();
        }
        File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), config.ToJsonString());
        using var weights = SafeTensorsFile.Open(Path.Combine(source, AdapterFormat.WeightsFile));
        TensorData Copy(string n)
        {
            if (reshaped is not { } r || r.Name != n) return TensorData.FromFloat32(n, weights[n].Shape, weights.ReadFloat32(n));
            return TensorData.FromFloat32(n, r.Shape, new float[r.Shape.Aggregate(1L, (a, b) => a * b)]);
        }
        SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), weights.Names.Select(Copy).ToList(), AdapterFormat.WeightsMetadata);
        return dir;
    }

    private const string Qkv = "transformer.h.0.self_attention.query_key_value";

    public static TheoryData<string, string, string> BadAdapters() => new()
    {
        // changed key or "reshape:NAME", value (JSON; "remove" drops the key; the reshaped tensor's new shape), expected part of the message
        { "reshape:boft_R", "[1, 4, 8, 8]", $"tensor 'base_model.model.{Qkv}.boft_R' has shape [1, 4, 8, 8] but the base model needs [1, 8, 8, 8] (BOFT rotation, 1 butterfly factor(s) of 8 blocks of 8 on '{Qkv}' (in 64))" },
        { "reshape:boft_s", "[64, 1]", $"tensor 'base_model.model.{Qkv}.boft_s' has shape [64, 1] but the base model needs [192, 1] (BOFT output scale of '{Qkv}' (out 192))" },
        { "boft_block_size", "12", $"boft_block_size = 12 does not divide in_features 64 of '{Qkv}' (expected a divisor of 64)" },
        { "boft_block_num", "3", "boft_block_size = 8 and boft_block_num = 3 (expected exactly one of them nonzero)" },
        { "boft_block_size", "0", "boft_block_size = 0 and boft_block_num = 0 (expected exactly one of them nonzero)" },
        { "boft_n_butterfly_factor", "0", "boft_n_butterfly_factor = 0 is invalid (expected a positive integer)" },
        { "boft_n_butterfly_factor", "5", $"boft_block_size = 8 with boft_n_butterfly_factor = 5 does not fit in_features 64 of '{Qkv}' (expected block size x 2^4 = 128 to divide it)" },
        { "boft_dropout", "1.0", "boft_dropout = 1.0 is invalid (expected a probability in [0, 1))" },
        { "bias", "\"boft_only\"", "bias = \"boft_only\" is invalid (expected \"none\"" },
        { "layers_to_transform", "[0]", "layers_to_transform = [0] is not supported for BOFT adapters" },
        { "exclude_modules", "[\"query_key_value\"]", "matches no module" },
        { "exclude_modules", "3", "exclude_modules = 3 is invalid (expected null, a regular expression (string) or a list of module names)" },
    };

    [Theory, MemberData(nameof(BadAdapters))]
    public void Trainer_and_exporter_refuse_the_same_adapter_with_the_same_message(string key, string value, string expected)
    {
        var adapter = key.StartsWith("reshape:", StringComparison.Ordinal)
            ? Changed(new Dictionary<string, JsonNode?>(), ($"base_model.model.{Qkv}.{key[8..]}", JsonSerializer.Deserialize<long[]>(value)!))
            : Changed(new Dictionary<string, JsonNode?> { [key] = value == "remove" ? null : JsonNode.Parse(value) });
        var outDir = TempExports.FreshPath();
        try
        {
            var trainer = Assert.Throws<PeftOnnxException>(() => PeftModelSource.FromAdapter(Paths.Case("bloom", "base_model"), adapter, out _, inferenceMode: true).Dispose());
            var exporter = Assert.Throws<PeftOnnxException>(() => OnnxExport.Export(Paths.Case("bloom", "base_model"), adapter, outDir, new ExportOptions()));
            Assert.Equal(exporter.Message, trainer.Message);
            Assert.Contains(expected, trainer.Message);
            Assert.Contains(adapter, trainer.Message);
            Assert.DoesNotContain('\n', trainer.Message);
            TempExports.AssertNothingWritten(outDir);
        }
        finally { Directory.Delete(adapter, true); }
    }

    /// <summary>Butterfly factors that do not fit the block count or size, on a base with 64 inputs per target.</summary>
    [Theory]
    [InlineData("\"boft_block_size\": 0, \"boft_block_num\": 2, \"boft_n_butterfly_factor\": 3", "boft_block_num = 2 does not fit boft_n_butterfly_factor = 3 (expected a multiple of 2^2 = 4)")]
    [InlineData("\"boft_block_size\": 0, \"boft_block_num\": 6, \"boft_n_butterfly_factor\": 1", "boft_block_num = 6 does not divide in_features 64 of 'model.decoder.layers.0.self_attn.q_proj' (expected a divisor of 64)")]
    [InlineData("\"boft_block_size\": 1, \"boft_block_num\": 0, \"boft_n_butterfly_factor\": 2", "boft_n_butterfly_factor = 2 needs an even block count and size, but in_features 64 of 'model.decoder.layers.0.self_attn.q_proj' gives 64 blocks of 1")]
    public void Butterfly_factors_that_do_not_fit_are_refused(string keys, string expected)
    {
        var dir = Paths.TempDir("peft-onnx-boft-factor");
        try
        {
            File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), $$"""{"peft_type": "BOFT", {{keys}}, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}""");
            SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), [], AdapterFormat.WeightsMetadata);
            var ex = Assert.Throws<PeftOnnxException>(() => PeftModelSource.FromAdapter(Paths.Case("opt", "base_model"), dir, out _, inferenceMode: true).Dispose());
            Assert.Contains(expected, ex.Message);
            Assert.Contains(dir, ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Gpt2_conv1d_targets_are_refused_as_peft_refuses_them()
    {
        var dir = Paths.TempDir("peft-onnx-gpt2-boft");
        try
        {
            File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), """{"peft_type": "BOFT", "boft_block_size": 8, "boft_block_num": 0, "task_type": "CAUSAL_LM"}""");
            SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), [], AdapterFormat.WeightsMetadata);
            var ex = Assert.Throws<PeftOnnxException>(() => PeftModelSource.FromAdapter(Paths.Case("gpt2", "base_model"), dir, out _, inferenceMode: true).Dispose());
            Assert.Contains("selects 'transformer.h.0.attn.c_attn', a transformers Conv1D layer, which PEFT's BOFT does not support (only nn.Linear layers)", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
