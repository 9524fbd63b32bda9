using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Quantization;

/// <summary>Baked prompts and prefixes over a quantized base, and `export --quantize` as a user runs it (refusals included).</summary>
public class QuantizedPromptAndCliTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("bloom", "prompt_tuning_random")]
    [InlineData("llama", "prefix")]
    [InlineData("gpt2", "p_tuning_mlp")]
    public void Baked_prompt_export_is_quantized_and_stays_near_the_float_export(string arch, string method)
    {
        var floatDir = TempExports.Adapted(arch, method, new ExportOptions());
        var quantDir = TempExports.Adapted(arch, method, new ExportOptions { Quantize = new WeightQuantization(new QuantizationFormat(8)) });
        try
        {
            // both graphs (model.onnx and the prefix-in-cache one) multiply by the quantized weights
            foreach (var file in Directory.EnumerateFiles(quantDir, "*.onnx"))
                Assert.Contains(new ExportedTensors(file).Model.Graph.Node, n => n.OpType == "MatMulNBits");
            var (expected, vocab, _) = QuantizedExportTests.Logits(arch, floatDir);
            var (actual, _, _) = QuantizedExportTests.Logits(arch, quantDir);
            // every position, padded ones included: both sides run the same prompt and batch
            var stats = Peft.Onnx.Verification.LogitStats.Compute(expected, actual, [1, expected.Length / vocab, vocab], null);
            output.WriteLine($"{arch}/{method} int8: top-1 agreement {stats.Top1Agreement:F3}, max |diff| {stats.MaxAbs:g3}, mean |diff| {stats.MeanAbs:g3} (std {stats.Std:g3})");
            Assert.True(stats.MeanAbs < 0.03 * stats.Std, $"mean |logit diff| {stats.MeanAbs} against a logit std of {stats.Std}");
            Assert.True(stats.Top1Agreement >= 0.85, $"top-1 agreement {stats.Top1Agreement}");
        }
        finally
        {
            Directory.Delete(floatDir, true);
            Directory.Delete(quantDir, true);
        }
    }

    [Fact]
    public void Export_quantize_int4_writes_matmulnbits_and_help_lists_the_options()
    {
        var dir = TempExports.FreshPath();
        try
        {
            var export = CliRunner.Run("export", "--base", Paths.Case("llama", "base_model"), "--adapter", Paths.Case("llama", "lora/adapter"), "--out", dir,
                "--quantize", "int4", "--block-size", "16", "--asymmetric", "--accuracy-level", "0", "--keep-head-float");
            output.WriteLine(export.Stderr);
            Assert.Equal(0, export.ExitCode);
            var graph = new ExportedTensors(Path.Combine(dir, "model.onnx"));
            var nodes = graph.Model.Graph.Node.Where(n => n.OpType == "MatMulNBits").ToList();
            Assert.NotEmpty(nodes);
            Assert.All(nodes, n => Assert.Equal(4, n.Input.Count));
            Assert.All(nodes, n => Assert.Equal(0, n.Attribute.Single(a => a.Name == "accuracy_level").I));
            // --keep-head-float: the head is the one float MatMul over an lm_head weight
            Assert.Contains("lm_head.weight", graph.Bytes.Keys);
            Assert.DoesNotContain("lm_head.weight_Q4", graph.Bytes.Keys);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

        var help = CliRunner.Run("export", "--help");
        foreach (var option in new[] { "--quantize", "--block-size", "--asymmetric", "--accuracy-level", "--keep-head-float", "--quantize-head", "--head-quantize", "--attention-quantize" })
            Assert.Contains(option, help.Stdout + help.Stderr);
    }

    [Theory]
    [InlineData(8, "--quantize-head")]                              // int4's default: an int8 head
    [InlineData(8, "--head-quantize", "int8")]
    [InlineData(4, "--quantize-head", "--head-quantize", "int4")]
    public void Export_quantize_head_is_the_default_spelled_out_and_head_quantize_sets_its_width(int headBits, params string[] options)
    {
        var dir = TempExports.FreshPath();
        try
        {
            var export = CliRunner.Run(["export", "--base", Paths.Case("gpt2", "base_model"), "--out", dir, "--quantize", "int4", .. options, "--json"]);
            output.WriteLine(export.Stderr);
            Assert.Equal(0, export.ExitCode);
            using var json = System.Text.Json.JsonDocument.Parse(export.Stdout);
            Assert.False(json.RootElement.GetProperty("quantize").GetProperty("head_float").GetBoolean());
            Assert.Equal(4, json.RootElement.GetProperty("quantize").GetProperty("bits").GetInt32());
            Assert.Equal(headBits, json.RootElement.GetProperty("quantize").GetProperty("head_bits").GetInt32());
            // gpt2 ties its head to the embeddings: the head gets its own quantized copy, the lookup stays float
            var graph = new ExportedTensors(Path.Combine(dir, "model.onnx"));
            Assert.Contains($"lm_head.weight_Q{headBits}", graph.Bytes.Keys);
            Assert.Contains(graph.Bytes.Keys, k => k.EndsWith("_Q4", StringComparison.Ordinal) && !k.StartsWith("lm_head", StringComparison.Ordinal));
            Assert.DoesNotContain(graph.Model.Graph.Node, n => n.OpType == "MatMul" && n.Input.Any(i => i.Contains("wte")));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData(8, "int4")]                                         // int4's default: int8 attention layers
    [InlineData(8, "int4", "--attention-quantize", "int8")]
    [InlineData(4, "int4", "--attention-quantize", "int4")]
    [InlineData(8, "int8", "--attention-quantize", "int8")]
    [InlineData(4, "int8", "--attention-quantize", "int4")]
    public void Attention_quantize_sets_the_attention_layers_width_and_leaves_the_mlp_at_the_body_s(int attentionBits, string width, params string[] options)
    {
        var dir = TempExports.FreshPath();
        try
        {
            var export = CliRunner.Run(["export", "--base", Paths.Case("gpt2", "base_model"), "--out", dir, "--quantize", width, .. options, "--json"]);
            Assert.True(export.ExitCode == 0, export.Stderr);
            using var json = System.Text.Json.JsonDocument.Parse(export.Stdout);
            Assert.Equal(attentionBits, json.RootElement.GetProperty("quantize").GetProperty("attention_bits").GetInt32());
            int bodyBits = width == "int4" ? 4 : 8;
            // GPT-2's attention: attn.c_attn and attn.c_proj; mlp.c_fc and mlp.c_proj take the body's width
            var graph = new ExportedTensors(Path.Combine(dir, "model.onnx"));
            var quantized = graph.Bytes.Keys.Where(k => k.StartsWith("transformer.h.", StringComparison.Ordinal) && (k.EndsWith("_Q4", StringComparison.Ordinal) || k.EndsWith("_Q8", StringComparison.Ordinal))).ToList();
            Assert.Equal(2 * 4, quantized.Count);
            foreach (var name in quantized)
                Assert.EndsWith(name.Contains(".attn.", StringComparison.Ordinal) ? $"_Q{attentionBits}" : $"_Q{bodyBits}", name);
            Assert.Equal(2 * 2, quantized.Count(n => n.Contains(".attn.", StringComparison.Ordinal)));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("'int3' is not supported", "--quantize", "int3")]
    [InlineData("block size 24", "--quantize", "int4", "--block-size", "24")]
    [InlineData("block size 8", "--quantize", "int8", "--block-size", "8")]
    [InlineData("accuracy level 7", "--quantize", "int8", "--accuracy-level", "7")]
    [InlineData("--dtype fp16 with --quantize is not supported on the CPU", "--quantize", "int8", "--dtype", "fp16")]
    [InlineData("--block-size needs --quantize", "--block-size", "32")]
    [InlineData("--keep-head-float needs --quantize", "--keep-head-float")]
    [InlineData("--quantize-head needs --quantize", "--quantize-head")]
    [InlineData("--head-quantize needs --quantize", "--head-quantize", "int8")]
    [InlineData("--attention-quantize needs --quantize", "--attention-quantize", "int8")]
    [InlineData("--attention-quantize 'int2' is not supported", "--quantize", "int4", "--attention-quantize", "int2")]
    [InlineData("--head-quantize 'int2' is not supported", "--quantize", "int4", "--head-quantize", "int2")]
    [InlineData("--head-quantize and --keep-head-float contradict", "--quantize", "int4", "--head-quantize", "int8", "--keep-head-float")]
    [InlineData("--keep-head-float and --quantize-head contradict", "--quantize", "int8", "--keep-head-float", "--quantize-head")]
    public void Bad_quantization_options_are_refused_with_one_line_and_exit_2(string message, params string[] options)
    {
        var dir = TempExports.FreshPath();
        var result = CliRunner.Run(["export", "--base", Paths.Case("gpt2", "base_model"), "--out", dir, .. options]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.Stderr);
        Assert.Single(result.Stderr.Trim().Split('\n'));
        TempExports.AssertNothingWritten(dir);
    }
}
