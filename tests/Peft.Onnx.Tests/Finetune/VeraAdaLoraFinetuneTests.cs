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

/// <summary>`train --data --method vera|adalora`: the options build PEFT's configs, and a short run trains and saves a loadable adapter.</summary>
public class VeraAdaLoraFinetuneTests
{
    private static AdapterConfig For(string method, MethodOptions o)
    {
        var config = ModelConfig.Load(FinetuneData.Bloom);
        return FinetuneSetup.ConfigFor(method, o, TaskKind.CausalLm, FinetuneData.Bloom, HfTokenizer.FromFolder(FinetuneData.Bloom), config.Dimensions);
    }

    [Fact]
    public void Options_build_the_configs_peft_would()
    {
        var vera = Assert.IsType<VeraConfig>(For("vera", new MethodOptions { R = 16, DInitial = 0.5, ProjectionPrngKey = 7, TargetModules = ["dense"] }));
        Assert.Equal((16, 0.5, 7L, "['dense']"), (vera.R, vera.DInitial, vera.ProjectionPrngKey, vera.TargetModules!.ToString()));
        var veraDefaults = Assert.IsType<VeraConfig>(For("vera", new MethodOptions()));
        Assert.Equal((256, 0.1, 0L, true), (veraDefaults.R, veraDefaults.DInitial, veraDefaults.ProjectionPrngKey, veraDefaults.SaveProjection));
        var adalora = Assert.IsType<AdaLoraConfig>(For("adalora", new MethodOptions { InitR = 4, LoraAlpha = 16, OrthRegWeight = 0.25 }));
        Assert.Equal((4, 4, 16.0, 0.25), (adalora.InitR, adalora.TargetR, adalora.LoraAlpha, adalora.OrthRegWeight));
        var adaloraDefaults = Assert.IsType<AdaLoraConfig>(For("adalora", new MethodOptions()));
        Assert.Equal((12, 12, 8.0, 0.5), (adaloraDefaults.InitR, adaloraDefaults.TargetR, adaloraDefaults.LoraAlpha, adaloraDefaults.OrthRegWeight));
    }

    [Theory]
    [InlineData("lora", "--d-initial")]
    [InlineData("adalora", "--projection-prng-key")]
    [InlineData("vera", "--init-r")]
    [InlineData("lora", "--orth-reg-weight")]
    [InlineData("adalora", "--r (use --init-r)")]
    public void Options_of_another_method_are_refused_naming_the_option(string method, string option)
    {
        var o = option switch
        {
            "--d-initial" => new MethodOptions { DInitial = 0.2 },
            "--projection-prng-key" => new MethodOptions { ProjectionPrngKey = 3 },
            "--init-r" => new MethodOptions { InitR = 4 },
            "--orth-reg-weight" => new MethodOptions { OrthRegWeight = 0.1 },
            _ => new MethodOptions { R = 4 },
        };
        var ex = Assert.Throws<PeftOnnxException>(() => For(method, o));
        Assert.Equal($"{option} does not apply to --method {method}", ex.Message);
    }

    [Fact]
    public void Rank_reallocation_is_refused_naming_the_option()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => For("adalora", new MethodOptions { InitR = 8, TargetR = 4 }));
        Assert.Equal("--target-r 4 differs from --init-r 8: AdaLoRA's rank re-allocation (update_and_allocate) is not implemented by train --data (give --target-r equal to --init-r, or leave it out)", ex.Message);
    }

    [Theory]
    [InlineData("vera", new[] { "--r", "16", "--d-initial", "0.1" }, "5e-2")]
    [InlineData("adalora", new[] { "--init-r", "4", "--target-r", "4", "--lora-alpha", "8" }, "5e-3")]
    public void Run_lowers_the_loss_and_saves_an_adapter_that_loads(string method, string[] options, string lr)
    {
        var (dir, train, validation) = FinetuneData.Write(train: 16, validation: 8);
        var outDir = Path.Combine(dir, "out");
        var command = new TrainCommand();
        string[] args =
        [
            "--base", FinetuneData.Bloom, "--data", train, "--validation", validation, "--seed", "42",
            "--text-column", "text", "--label-column", "label", "--method", method, .. options,
            "--lr", lr, "--epochs", "2", "--batch-size", "8", "--out", outDir, "--device", "cpu",
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
