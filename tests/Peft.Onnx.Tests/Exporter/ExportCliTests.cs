using System.Text.Json;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>`peft-onnx export` and `peft-onnx forward --onnx` as a user runs them, against PEFT's merged references.</summary>
public class ExportCliTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("gpt2", "lora")]
    [InlineData("t5", "lora_all")]
    public void Export_then_forward_onnx_matches_peft_merged_logits_and_loss(string arch, string method)
    {
        var dir = TempExports.FreshPath();
        var logitsFile = Path.Combine(Path.GetTempPath(), $"peft-onnx-forward-{Guid.NewGuid():N}.safetensors");
        try
        {
            var export = CliRunner.Run("export", "--base", Paths.Case(arch, "base_model"), "--adapter", Paths.Case(arch, method + "/adapter"), "--out", dir, "--json");
            output.WriteLine(export.Stderr);
            Assert.Equal(0, export.ExitCode);
            using (var doc = JsonDocument.Parse(export.Stdout))
            {
                var root = doc.RootElement;
                Assert.True(root.GetProperty("seconds").GetDouble() > 0);
                Assert.True(root.GetProperty("peak_rss_bytes").GetInt64() > 0);
                Assert.True(root.GetProperty("merged").GetBoolean());
                Assert.Contains("genai_config.json", root.GetProperty("files").EnumerateArray().Select(f => f.GetString()));
            }

            var forward = CliRunner.Run("forward", "--onnx", dir, "--inputs", Path.Combine(Paths.Case(arch), "inputs.safetensors"), "--out", logitsFile);
            output.WriteLine(forward.Stderr);
            Assert.Equal(0, forward.ExitCode);
            using var actual = SafeTensorsFile.Open(logitsFile);
            using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, method), "reference.safetensors"));
            using var reference = new Reference(arch);
            Assert.Equal(expected["logits_merged"].Shape, actual["logits"].Shape);
            var vocab = (int)actual["logits"].Shape[^1];
            var rows = reference.IsEncoderDecoder
                ? reference.Inputs.ReadInt64("labels").Select(l => l != -100).ToArray()
                : Tolerance.RowsFromMask(reference.Inputs.ReadInt64("attention_mask"));
            Tolerance.AssertLogits(expected.ReadFloat32("logits_merged"), actual.ReadFloat32("logits"), vocab, rows, "forward --onnx logits");
            var loss = actual.ReadFloat32("loss")[0];
            output.WriteLine($"loss {loss} vs PEFT merged {expected.ReadFloat32("loss_merged")[0]}");
            Tolerance.AssertLoss(expected.ReadFloat32("loss_merged")[0], loss);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            File.Delete(logitsFile);
        }
    }

    [Fact]
    public void Export_into_a_non_empty_folder_is_refused_without_force()
    {
        var dir = Paths.TempDir("peft-onnx-nonempty");
        try
        {
            File.WriteAllText(Path.Combine(dir, "keep.txt"), "x");
            var refused = CliRunner.Run("export", "--base", Paths.Case("opt", "base_model"), "--out", dir);
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("not empty", refused.Stderr);
            Assert.Single(refused.Stderr.Trim().Split('\n'));
            Assert.Equal(["keep.txt"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName));

            var forced = CliRunner.Run("export", "--base", Paths.Case("opt", "base_model"), "--adapter", Paths.Case("opt", "ia3/adapter"), "--out", dir, "--force");
            Assert.Equal(0, forced.ExitCode);
            Assert.Contains("peak RSS", forced.Stderr);
            Assert.False(File.Exists(Path.Combine(dir, "keep.txt")));
            Assert.True(File.Exists(Path.Combine(dir, "model.onnx")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_failed_export_leaves_no_folder_and_one_error_line()
    {
        var dir = TempExports.FreshPath();
        var result = CliRunner.Run("export", "--base", Paths.Case("gpt2", "base_model"), "--adapter", Paths.Case("llama", "lora/adapter"), "--out", dir);
        output.WriteLine(result.Stderr);
        Assert.NotEqual(0, result.ExitCode);
        Assert.StartsWith("error:", result.Stderr);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void Forward_onnx_on_an_encoder_decoder_export_needs_labels()
    {
        var dir = TempExports.FreshPath();
        var inputs = Path.Combine(Path.GetTempPath(), $"peft-onnx-inputs-{Guid.NewGuid():N}.safetensors");
        try
        {
            Peft.Onnx.Exporter.OnnxExport.ExportBase(Paths.Case("t5", "base_model"), dir);
            using (var reference = new Reference("t5"))
                SafeTensorsWriter.Write(inputs, [
                    TensorData.FromInt64("input_ids", reference.Shape("input_ids"), reference.Inputs.ReadInt64("input_ids")),
                    TensorData.FromInt64("attention_mask", reference.Shape("attention_mask"), reference.Inputs.ReadInt64("attention_mask"))]);
            var result = CliRunner.Run("forward", "--onnx", dir, "--inputs", inputs, "--out", inputs + ".out");
            Assert.NotEqual(0, result.ExitCode);
            Assert.Contains("labels", result.Stderr);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            File.Delete(inputs);
        }
    }
}
