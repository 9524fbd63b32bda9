using System.Text.Json;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.CurrentPeft;

/// <summary>The verbs on current PEFT's LoRA adapters as a user calls them: inspect's counts, export, compare, and the refusals.</summary>
public class CurrentLoraCliTests
{
    /// <summary>PEFT prints 2,432 trainable parameters for bloom/lora_dora (2,048 of LoRA + 384 magnitudes).</summary>
    [Fact]
    public void Inspect_counts_dora_as_peft_prints_it()
    {
        var r = CliRunner.Run("inspect", "--base", CurrentLoraCases.BaseDir("bloom"), "--adapter", CurrentLoraCases.AdapterDir("bloom", "lora_dora"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(2432, json.GetProperty("trainable").GetInt64());
        Assert.Equal(166656, json.GetProperty("all").GetInt64());
    }

    [Theory]
    [InlineData("gpt2", "lora_dora", "--no-merge")]
    [InlineData("llama", "lora_bias", "")]
    public void Compare_agrees_with_the_export(string arch, string method, string exportFlag)
    {
        var dir = Paths.TempDir();
        try
        {
            var onnx = Path.Combine(dir, "onnx");
            string[] export = ["export", "--base", CurrentLoraCases.BaseDir(arch), "--adapter", CurrentLoraCases.AdapterDir(arch, method), "--out", onnx];
            var e = CliRunner.Run(exportFlag.Length > 0 ? [.. export, exportFlag] : export);
            Assert.True(e.ExitCode == 0, e.Stderr);
            var r = CliRunner.Run("compare", "--base", CurrentLoraCases.BaseDir(arch), "--adapter", CurrentLoraCases.AdapterDir(arch, method), "--onnx", onnx,
                "--inputs", Path.Combine(Paths.Case(arch), "inputs.safetensors"), "--device", "cpu", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var json = JsonDocument.Parse(r.Stdout).RootElement;
            Assert.True(json.GetProperty("max_abs_diff").GetDouble() < 1e-4, r.Stdout);
            Assert.Equal(1.0, json.GetProperty("top1_agreement").GetDouble());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void An_unimplemented_key_fails_with_exit_2_naming_it()
    {
        var dir = Paths.TempDir();
        try
        {
            var source = CurrentLoraCases.AdapterDir("opt", "lora_exclude");
            var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(source, "adapter_config.json")))!.AsObject();
            config["layer_replication"] = System.Text.Json.Nodes.JsonNode.Parse("[[0, 1], [0, 2]]");
            File.WriteAllText(Path.Combine(dir, "adapter_config.json"), config.ToJsonString());
            File.Copy(Path.Combine(source, "adapter_model.safetensors"), Path.Combine(dir, "adapter_model.safetensors"));
            var r = CliRunner.Run("export", "--base", CurrentLoraCases.BaseDir("opt"), "--adapter", dir, "--out", Path.Combine(dir, "onnx"));
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("layer_replication = [[0,1],[0,2]] is not supported", r.Stderr);
            Assert.Single(r.Stderr.Trim().Split('\n'));
            Assert.False(Directory.Exists(Path.Combine(dir, "onnx")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
