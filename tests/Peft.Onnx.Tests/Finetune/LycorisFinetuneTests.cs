using System.Text.Json;
using Peft.Onnx.Cli;
using Peft.Onnx.Cli.Commands;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Finetune;
using Peft.Onnx.Trainer.Tuners;
using Xunit;

namespace Peft.Onnx.Tests.Finetune;

/// <summary>`train --data --method loha|lokr`: the options build PEFT's configs, and a short run trains and saves a loadable adapter.</summary>
public class LycorisFinetuneTests
{
    private static AdapterConfig For(string method, MethodOptions o)
    {
        var config = ModelConfig.Load(FinetuneData.Bloom);
        return FinetuneSetup.ConfigFor(method, o, TaskKind.CausalLm, FinetuneData.Bloom, HfTokenizer.FromFolder(FinetuneData.Bloom), config.Dimensions);
    }

    [Fact]
    public void Options_build_the_configs_peft_would()
    {
        var loha = Assert.IsType<LoHaConfig>(For("loha", new MethodOptions { R = 4, Alpha = 16, TargetModules = ["dense"] }));
        Assert.Equal((4, 16.0, "['dense']"), (loha.R, loha.Alpha, loha.TargetModules!.ToString()));
        var lokr = Assert.IsType<LoKrConfig>(For("lokr", new MethodOptions { R = 2, Alpha = 2, DecomposeBoth = true, DecomposeFactor = 4 }));
        Assert.Equal((2, 2.0, true, 4), (lokr.R, lokr.Alpha, lokr.DecomposeBoth, lokr.DecomposeFactor));
        var defaults = Assert.IsType<LoKrConfig>(For("lokr", new MethodOptions()));
        Assert.Equal((8, 8.0, false, -1, true), (defaults.R, defaults.Alpha, defaults.DecomposeBoth, defaults.DecomposeFactor, defaults.InitWeights));
    }

    [Theory]
    [InlineData("lora", "--alpha")]
    [InlineData("loha", "--lora-alpha (use --alpha)")]
    [InlineData("loha", "--decompose-factor")]
    [InlineData("ia3", "--decompose-both")]
    public void Options_of_another_method_are_refused_naming_the_option(string method, string option)
    {
        var o = option switch
        {
            "--alpha" => new MethodOptions { Alpha = 4 },
            "--decompose-factor" => new MethodOptions { DecomposeFactor = 4 },
            "--decompose-both" => new MethodOptions { DecomposeBoth = true },
            _ => new MethodOptions { LoraAlpha = 4 },
        };
        var ex = Assert.Throws<PeftOnnxException>(() => For(method, o));
        Assert.Equal($"{option} does not apply to --method {method}", ex.Message);
    }

    [Theory]
    [InlineData("loha", new[] { "--r", "4", "--alpha", "8" })]
    [InlineData("lokr", new[] { "--r", "2", "--alpha", "2", "--decompose-both", "--decompose-factor", "8" })]
    public void Run_lowers_the_loss_and_saves_an_adapter_that_loads(string method, string[] options)
    {
        var (dir, train, validation) = FinetuneData.Write(train: 16, validation: 8);
        var outDir = Path.Combine(dir, "out");
        var command = new TrainCommand();
        string[] args =
        [
            "--base", FinetuneData.Bloom, "--data", train, "--validation", validation, "--seed", "42",
            "--text-column", "text", "--label-column", "label", "--method", method, .. options,
            "--lr", "5e-3", "--epochs", "2", "--batch-size", "8", "--out", outDir, "--device", "cpu",
        ];
        Assert.Equal(0, command.Run(VerbLine.Parse(command, args)));
        var metrics = File.ReadAllLines(Path.Combine(outDir, FinetuneRun.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        double loss1 = metrics[0].GetProperty("train_loss").GetDouble(), loss2 = metrics[1].GetProperty("train_loss").GetDouble();
        Assert.True(loss2 < loss1, $"{method}: train loss {loss1} -> {loss2}");

        var saved = AdapterConfig.Load(outDir);
        Assert.Equal(method.ToUpperInvariant(), saved.PeftType);
        Assert.True(saved.InferenceMode);
        using var model = PeftModel.Load(FinetuneData.Bloom, outDir);
        Assert.IsAssignableFrom<IMergeableTuner>(model.Tuner);
        Assert.All(model.Tuner.TrainableParameters, p => Assert.False(p.Parameter.eq(0).all().item<bool>(), $"{method} {p.Name} never trained"));
    }
}
