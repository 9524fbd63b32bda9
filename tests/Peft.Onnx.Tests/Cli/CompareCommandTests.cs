using System.Text.Json;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>`compare`: an adapter of every method against its own export agrees; an export of another adapter does not.</summary>
public class CompareCommandTests
{
    private static readonly string[] Fields =
        ["peft_type", "rows", "positions", "max_abs_diff", "mean_abs_diff", "tolerance", "passed", "top1_agreement",
         "generations", "generations_equal", "generation_agreement", "torch_accuracy", "onnx_accuracy"];

    private static string Export(string arch, string method, string dir)
    {
        var outDir = Path.Combine(dir, $"{arch}-{method}");
        OnnxExport.Export(Paths.Case(arch, "base_model"), Paths.Case(arch, Path.Combine(method, "adapter")), outDir, new ExportOptions());
        return outDir;
    }

    private static CliRunner.Result Compare(string arch, string method, string onnx, params string[] extra) =>
        CliRunner.Run(["compare", "--base", Paths.Case(arch, "base_model"), "--adapter", Paths.Case(arch, Path.Combine(method, "adapter")),
            "--onnx", onnx, "--inputs", Path.Combine(Paths.Case(arch), "inputs.safetensors"), "--max-new-tokens", "5", "--device", "cpu", .. extra]);

    [Theory]
    [InlineData("gpt2", "lora")]
    [InlineData("gpt2", "ia3")]
    [InlineData("gpt2", "prompt_tuning_text")]
    [InlineData("gpt2", "p_tuning_mlp")]
    [InlineData("gpt2", "prefix")]
    [InlineData("t5", "lora")]
    [InlineData("t5", "prefix")]
    public void Adapter_agrees_with_its_export(string arch, string method)
    {
        var dir = Paths.TempDir();
        try
        {
            var onnx = Export(arch, method, dir);
            var plot = Path.Combine(dir, "diff.png");
            var r = Compare(arch, method, onnx, "--json", "--plot", plot);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            Assert.Single(r.Stdout.Trim().Split('\n'));
            var json = JsonDocument.Parse(r.Stdout).RootElement;
            foreach (var f in Fields) Assert.True(json.TryGetProperty(f, out _), $"missing {f}");
            Assert.True(json.GetProperty("max_abs_diff").GetDouble() < 1e-4, r.Stdout);
            Assert.True(json.GetProperty("passed").GetBoolean());
            Assert.Equal(1.0, json.GetProperty("top1_agreement").GetDouble());
            Assert.Equal(json.GetProperty("generations").GetInt32(), json.GetProperty("generations_equal").GetInt32());
            Assert.True(new FileInfo(plot).Length > 1000);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Export_of_another_adapter_fails_with_exit_1_and_a_table()
    {
        var dir = Paths.TempDir();
        try
        {
            var onnx = Export("gpt2", "ia3", dir);
            var r = Compare("gpt2", "lora", onnx);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("max |diff|", r.Stdout);
            Assert.Contains("beyond the tolerance", r.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Bad_input_is_a_one_line_error()
    {
        var r = CliRunner.Run("compare", "--base", Paths.Case("gpt2", "base_model"), "--adapter", Paths.Case("gpt2", "lora/adapter"), "--onnx", Paths.Case("gpt2", "base_model"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("exactly one of --inputs", r.Stderr);
    }
}
