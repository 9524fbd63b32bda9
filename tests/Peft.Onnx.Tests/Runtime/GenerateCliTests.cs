using System.Text.Json;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>`peft-onnx generate` as a user runs it.</summary>
public class GenerateCliTests
{
    [Fact]
    public void Json_output_is_one_object_with_hugging_face_sequences()
    {
        var dir = ExportedModels.Folder("llama");
        using var reference = new Reference("llama");
        var prompt = reference.Inputs.ReadInt64("gen_input_ids");
        var expected = Reference.Rows(reference.BaseMeta.GetProperty("generated"))[0];
        var r = CliRunner.Run("generate", "--onnx", dir, "--input-ids", string.Join(',', prompt), "--max-new-tokens", "6", "--greedy", "--device", "cpu", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var json = JsonDocument.Parse(r.Stdout);
        var root = json.RootElement;
        Assert.Equal(expected, Reference.Rows(root.GetProperty("sequences"))[0]);
        Assert.Equal(6, root.GetProperty("new_tokens").GetInt32());
        Assert.Equal("cpu", root.GetProperty("device").GetString());
        Assert.True(root.GetProperty("seconds").GetDouble() > 0);
        Assert.True(root.GetProperty("tokens_per_second").GetDouble() > 0);
        Assert.True(root.TryGetProperty("text", out _));
    }

    [Fact]
    public void Bad_input_exits_non_zero_with_one_line()
    {
        var dir = ExportedModels.Folder("gpt2");
        var r = CliRunner.Run("generate", "--onnx", dir, "--input-ids", "1,5000", "--device", "cpu", "--json");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Contains("outside the vocabulary", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));

        var both = CliRunner.Run("generate", "--onnx", dir, "--greedy", "--seed", "3", "--input-ids", "1,2");
        Assert.NotEqual(0, both.ExitCode);
    }
}
