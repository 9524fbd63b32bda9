using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Refusals;

/// <summary>
/// Sequences longer than a learned position table are refused by every verb that reads a batch, before any compute,
/// with exit code 2 and one line naming the inputs file, the config key and the lengths (they used to end in an
/// index error inside libtorch or ONNX Runtime).
/// </summary>
public class ContextLengthCliTests
{
    /// <summary>A batch of one row of <paramref name="length"/> tokens (labels = input ids).</summary>
    private static string Batch(string dir, int length)
    {
        var ids = Enumerable.Range(0, length).Select(i => 5L + i % 100).ToArray();
        var path = Path.Combine(dir, $"in{length}.safetensors");
        SafeTensorsWriter.Write(path, [
            TensorData.FromInt64("input_ids", [1, length], ids),
            TensorData.FromInt64("attention_mask", [1, length], Enumerable.Repeat(1L, length).ToArray()),
            TensorData.FromInt64("labels", [1, length], ids),
        ]);
        return path;
    }

    private static void RefusedBeforeCompute(CliRunner.Result r, string inputs, string expected)
    {
        Assert.Equal(2, r.ExitCode);
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error: "));
        Assert.StartsWith($"error: {inputs}: sequences of ", line);
        Assert.Contains(expected, line);
        Assert.Contains("n_positions = 128", line);
    }

    [Fact]
    public void Forward_train_and_onnx_forward_refuse_sequences_beyond_n_positions()
    {
        var dir = Paths.TempDir();
        try
        {
            var baseDir = Paths.Case("gpt2", "base_model");
            var promptAdapter = Paths.Case("gpt2", Path.Combine("prompt_tuning_random", "adapter"));
            var tooLong = Batch(dir, 129);
            RefusedBeforeCompute(CliRunner.Run("forward", "--base", baseDir, "--inputs", tooLong, "--out", Path.Combine(dir, "o.safetensors")),
                tooLong, "129 tokens do not fit");
            // 121 tokens fit alone, not after the soft prompt's 8 virtual tokens.
            var withPrompt = Batch(dir, 121);
            RefusedBeforeCompute(CliRunner.Run("train", "--base", baseDir, "--adapter", promptAdapter, "--batch", withPrompt, "--steps", "1",
                "--optimizer", "sgd", "--lr", "0.1", "--out", Path.Combine(dir, "t")), withPrompt, "plus the adapter's 8 virtual tokens (129 positions)");
            RefusedBeforeCompute(CliRunner.Run("forward", "--onnx", ExportedModels.Folder("gpt2"), "--inputs", tooLong, "--out", Path.Combine(dir, "o.safetensors")),
                tooLong, "129 tokens do not fit");
            Assert.False(File.Exists(Path.Combine(dir, "o.safetensors")));
            Assert.False(Directory.Exists(Path.Combine(dir, "t")));

            // train --data: the longest example is measured after tokenization, before any weights are read.
            var data = Path.Combine(dir, "long.jsonl");
            File.WriteAllLines(data, Enumerable.Range(0, 4).Select(i =>
                System.Text.Json.JsonSerializer.Serialize(new { text = string.Concat(Enumerable.Repeat("the company said profit rose. ", i == 2 ? 60 : 2)), label = "positive" })));
            var r = CliRunner.Run("train", "--base", Path.Combine(Paths.Models, "tiny-gpt2-random"), "--data", data, "--validation", data,
                "--text-column", "text", "--label-column", "label", "--method", "lora", "--lr", "1e-3", "--epochs", "1", "--out", Path.Combine(dir, "d"));
            Assert.Equal(2, r.ExitCode);
            var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error: "));
            Assert.StartsWith($"error: train --data {data}: the longest example (prompt + label; --max-length cuts examples): sequences of ", line);
            Assert.Contains("n_positions = 128", line);
            Assert.False(Directory.Exists(Path.Combine(dir, "d")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Compare_generates_only_up_to_the_end_of_the_table()
    {
        var dir = Paths.TempDir();
        try
        {
            // 118 tokens after 8 virtual ones: the logits fit, and 2 of the 10 new tokens before the table ends.
            var onnx = ExportedModels.Adapter("gpt2", "prompt_tuning_random", new Peft.Onnx.Exporter.ExportOptions { Verify = false }).Directory;
            var r = CliRunner.Run("compare", "--base", Paths.Case("gpt2", "base_model"), "--adapter", Paths.Case("gpt2", Path.Combine("prompt_tuning_random", "adapter")),
                "--onnx", onnx, "--inputs", Batch(dir, 118), "--max-new-tokens", "10", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var report = System.Text.Json.JsonDocument.Parse(r.Stdout);
            Assert.Equal(1, report.RootElement.GetProperty("generations").GetInt32());
            Assert.Equal(1, report.RootElement.GetProperty("generations_equal").GetInt32());
            Assert.Equal(2, report.RootElement.GetProperty("torch_samples")[0].GetArrayLength());
        }
        finally { Directory.Delete(dir, true); }
    }
}
