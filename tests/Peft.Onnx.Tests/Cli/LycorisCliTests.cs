using System.Text.Json;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>The verbs on LoHa / LoKr adapters of current PEFT, as a user runs them.</summary>
public class LycorisCliTests
{
    [Theory]
    [InlineData("bloom", "loha", "trainable params: 4,096 || all params: 168,320 || trainable%: 2.4334600760456273")]
    [InlineData("t5", "lokr", "trainable params: 1,152 || all params: 230,016 || trainable%: 0.5008347245409015")]
    public void Inspect_prints_peft_line(string arch, string method, string line)
    {
        var r = CliRunner.Run("inspect", "--base", Paths.Case(arch, "base_model"), "--adapter", Paths.CurrentCase(arch, method + "/adapter"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(line, r.Stdout.Trim());
    }

    [Theory]
    [InlineData("opt", "lokr", false)]
    [InlineData("llama", "loha", true)]
    public void Forward_with_the_adapter_writes_peft_logits_and_loss(string arch, string method, bool merge)
    {
        var caseDir = Paths.CurrentCase(arch, method);
        var outFile = Path.Combine(Paths.TempDir(), "out.safetensors");
        string[] args = ["forward", "--base", Paths.Case(arch, "base_model"), "--adapter", Path.Combine(caseDir, "adapter"),
            "--inputs", Path.Combine(Paths.Case(arch), "inputs.safetensors"), "--out", outFile, "--device", "cpu"];
        var r = CliRunner.Run(merge ? [.. args, "--merge"] : args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var got = SafeTensorsFile.Open(outFile);
        using var expected = SafeTensorsFile.Open(Path.Combine(caseDir, "reference.safetensors"));
        using var inputs = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch), "inputs.safetensors"));
        var meta = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(caseDir, "meta.json"))).RootElement;
        var (logits, loss) = merge ? ("logits_merged", "loss_merged") : ("logits", "loss");
        Tolerance.AssertLogits(expected.ReadFloat32(logits), got.ReadFloat32("logits"), 1000, Tolerance.RowsFromMask(inputs.ReadInt64("attention_mask")));
        Tolerance.AssertLoss(meta.GetProperty(loss).GetDouble(), got.ReadFloat32("loss")[0]);
    }

    [Fact]
    public void Export_with_no_merge_fails_with_one_line_naming_the_method()
    {
        var outDir = TempExports.FreshPath();
        var r = CliRunner.Run("export", "--base", Paths.Case("opt", "base_model"), "--adapter", Paths.CurrentCase("opt", "loha/adapter"), "--out", outDir, "--no-merge");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--no-merge applies to LoRA adapters only (a LOHA delta is always merged into its module's weights)", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'), l => l.Contains("--no-merge", StringComparison.Ordinal));
        TempExports.AssertNothingWritten(outDir);
    }
}
