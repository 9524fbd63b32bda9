using System.Text.Json;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>The foundation verbs as the checks call them: inspect and forward, and their one-line errors.</summary>
public class FoundationCliTests
{
    [Fact]
    public void Inspect_counts_from_config_alone()
    {
        var dir = Paths.TempDir();
        File.Copy(Path.Combine(Paths.DocConfigs, "bloomz-560m", "config.json"), Path.Combine(dir, "config.json"));
        var r = CliRunner.Run("inspect", "--base", dir, "--json");
        Assert.Equal(0, r.ExitCode);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(559214592, json.GetProperty("all").GetInt64());
    }

    [Fact]
    public void Inspect_prints_peft_line()
    {
        var r = CliRunner.Run("inspect", "--base", Paths.Case("bloom", "base_model"));
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("trainable params: 164,224 || all params: 164,224 || trainable%: 100.0", r.Stdout.Trim());
    }

    [Fact]
    public void Forward_writes_reference_logits_and_loss()
    {
        var outFile = Path.Combine(Paths.TempDir(), "out.safetensors");
        var r = CliRunner.Run("forward", "--base", Paths.Case("bloom", "base_model"), "--inputs", Path.Combine(Paths.Case("bloom"), "inputs.safetensors"), "--out", outFile, "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var got = SafeTensorsFile.Open(outFile);
        using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case("bloom"), "base_reference.safetensors"));
        using var inputs = SafeTensorsFile.Open(Path.Combine(Paths.Case("bloom"), "inputs.safetensors"));
        Tolerance.AssertLogits(expected.ReadFloat32("logits"), got.ReadFloat32("logits"), 1000, Tolerance.RowsFromMask(inputs.ReadInt64("attention_mask")));
        Tolerance.AssertLoss(expected.ReadFloat32("loss")[0], got.ReadFloat32("loss")[0]);
    }

    public static TheoryData<string, string[]> BadInputs()
    {
        var data = new TheoryData<string, string[]>();
        var dir = Paths.TempDir();
        var truncated = Path.Combine(dir, "truncated");
        Directory.CreateDirectory(truncated);
        File.Copy(Path.Combine(Paths.Case("bloom", "base_model"), "config.json"), Path.Combine(truncated, "config.json"));
        var weights = File.ReadAllBytes(Path.Combine(Paths.Case("bloom", "base_model"), "model.safetensors"));
        File.WriteAllBytes(Path.Combine(truncated, "model.safetensors"), weights[..(weights.Length / 2)]);
        data.Add("model.safetensors", ["forward", "--base", truncated, "--inputs", Path.Combine(Paths.Case("bloom"), "inputs.safetensors"), "--out", Path.Combine(dir, "o.safetensors")]);

        var unknown = Path.Combine(dir, "unknown");
        Directory.CreateDirectory(unknown);
        File.WriteAllText(Path.Combine(unknown, "config.json"), "{\"model_type\":\"bert\"}");
        data.Add("unknown model_type 'bert'", ["inspect", "--base", unknown]);

        var missingKey = Path.Combine(dir, "missing");
        Directory.CreateDirectory(missingKey);
        File.WriteAllText(Path.Combine(missingKey, "config.json"), "{\"hidden_size\":64}");
        data.Add("missing required key 'model_type'", ["inspect", "--base", missingKey]);

        data.Add("folder not found", ["inspect", "--base", Path.Combine(dir, "nowhere")]);
        data.Add("unknown option --bogus", ["inspect", "--base", Paths.Case("bloom", "base_model"), "--bogus"]);
        data.Add("--device 'tpu'", ["forward", "--base", Paths.Case("bloom", "base_model"), "--inputs", Path.Combine(Paths.Case("bloom"), "inputs.safetensors"), "--out", Path.Combine(dir, "o.safetensors"), "--device", "tpu"]);
        data.Add("CPU libtorch", ["forward", "--base", Paths.Case("bloom", "base_model"), "--inputs", Path.Combine(Paths.Case("bloom"), "inputs.safetensors"), "--out", Path.Combine(dir, "o.safetensors"), "--device", "cuda"]);
        return data;
    }

    [Theory, MemberData(nameof(BadInputs))]
    public void Bad_input_gives_one_line_error_and_nonzero_exit(string expected, string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.NotEqual(0, r.ExitCode);
        var errors = r.Stderr.Trim().Split('\n').Where(l => l.StartsWith("error: ")).ToList();
        Assert.Single(errors);
        Assert.Contains(expected, errors[0]);
        Assert.DoesNotContain("   at ", r.Stderr); // no stack trace without --verbose
    }
}
