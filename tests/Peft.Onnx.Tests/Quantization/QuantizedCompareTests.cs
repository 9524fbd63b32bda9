using System.Text.Json;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Verification;
using Xunit;

namespace Peft.Onnx.Tests.Quantization;

/// <summary>`compare` on a quantized export: KL divergence and perplexities, exit status only with --tolerance.</summary>
public class QuantizedCompareTests
{
    [Fact]
    public void Kl_divergence_matches_a_hand_computed_value()
    {
        // p = softmax(0, ln 3) = (1/4, 3/4), q = (1/2, 1/2): KL = 1/4 ln(1/2) + 3/4 ln(3/2)
        var stats = DistributionStats.Compute([0f, MathF.Log(3f)], [0f, 0f], [1, 1, 2], null, null, shifted: true);
        Assert.Equal(0.25 * Math.Log(0.5) + 0.75 * Math.Log(1.5), stats.KlDivergence, 1e-6);
        Assert.Null(stats.AdaptedPerplexity);
        Assert.Equal(0, DistributionStats.Compute([1f, 2f, 3f], [1f, 2f, 3f], [1, 1, 3], null, null, true).KlDivergence, 1e-12);
    }

    [Theory]
    [InlineData("gpt2", true)]
    [InlineData("t5", false)]
    public void Perplexity_is_the_exponential_of_transformers_loss(string arch, bool shifted)
    {
        using var reference = new Reference(arch);
        using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, "lora"), "reference.safetensors"));
        var logits = expected.ReadFloat32("logits");
        var shape = expected["logits"].Shape;
        var labels = reference.Inputs.ReadInt64("labels");
        var loss = Reference.Meta(arch, "lora").GetProperty("loss").GetDouble();
        var perplexity = DistributionStats.Perplexity(logits, labels, (int)shape[0], (int)shape[1], (int)shape[2], shifted);
        Assert.Equal(Math.Exp(loss), perplexity!.Value, 1e-4 * Math.Exp(loss));
    }

    [Fact]
    public void Compare_reports_the_quantized_export_and_fails_only_with_a_tolerance()
    {
        var dir = Paths.TempDir();
        try
        {
            var onnx = Path.Combine(dir, "int8");
            OnnxExport.Export(Paths.Case("gpt2", "base_model"), Paths.Case("gpt2", "lora/adapter"), onnx,
                new ExportOptions { Quantize = new WeightQuantization(new QuantizationFormat(8)) });
            string[] args = ["compare", "--base", Paths.Case("gpt2", "base_model"), "--adapter", Paths.Case("gpt2", "lora/adapter"), "--onnx", onnx,
                "--inputs", Path.Combine(Paths.Case("gpt2"), "inputs.safetensors"), "--max-new-tokens", "3", "--device", "cpu"];
            var r = CliRunner.Run([.. args, "--json"]);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var json = JsonDocument.Parse(r.Stdout).RootElement;
            Assert.True(json.GetProperty("quantized").GetBoolean());
            Assert.False(json.GetProperty("tolerance_applied").GetBoolean());
            Assert.True(json.GetProperty("max_abs_diff").GetDouble() > 1e-4, "an int8 export differs from the float model");
            var kl = json.GetProperty("kl_divergence").GetDouble();
            Assert.InRange(kl, 1e-9, 0.01);
            double torchPerplexity = json.GetProperty("torch_perplexity").GetDouble(), onnxPerplexity = json.GetProperty("onnx_perplexity").GetDouble();
            Assert.Equal(Math.Exp(Reference.Meta("gpt2", "lora").GetProperty("loss").GetDouble()), torchPerplexity, 1e-3 * torchPerplexity);
            Assert.InRange(onnxPerplexity / torchPerplexity, 0.95, 1.05);

            var strict = CliRunner.Run([.. args, "--tolerance", "1e-6"]);
            Assert.Equal(1, strict.ExitCode);
            Assert.Contains("beyond the tolerance", strict.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }
}
