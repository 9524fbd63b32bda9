using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Finetune;

/// <summary>`peft-onnx train --data` as a process: the verb routes to the data mode and bad input is one line, exit 2.</summary>
public class FinetuneCliTests
{
    [Fact]
    public void Bad_method_exits_2_with_one_line()
    {
        var (dir, train, validation) = FinetuneData.Write(4, 4);
        var r = CliRunner.Run("train", "--base", FinetuneData.Bloom, "--data", train, "--validation", validation,
            "--text-column", "text", "--label-column", "label", "--method", "lorax", "--lr", "1e-3", "--epochs", "1", "--out", Path.Combine(dir, "o"));
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: train: --method 'lorax' is not one of", line);
    }

    [Fact]
    public void Json_prints_one_object_with_the_epochs()
    {
        var (dir, train, validation) = FinetuneData.Write(8, 4);
        var outDir = Path.Combine(dir, "o");
        var r = CliRunner.Run("train", "--base", FinetuneData.Bloom, "--data", train, "--validation", validation,
            "--text-column", "text", "--label-column", "label", "--method", "lora", "--lr", "5e-3", "--epochs", "1",
            "--batch-size", "8", "--out", outDir, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        var epoch = Assert.Single(doc.RootElement.GetProperty("epochs").EnumerateArray());
        Assert.Equal(1, epoch.GetProperty("epoch").GetInt32());
        Assert.InRange(doc.RootElement.GetProperty("final_accuracy").GetDouble(), 0, 1);
        Assert.Contains("final accuracy", r.Stderr);
    }
}
