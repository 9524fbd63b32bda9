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

/// <summary>`train --data --method oft|hra|fourierft|boft`: the options build PEFT's configs, and a short run trains and saves a loadable adapter.</summary>
public class OrthogonalFinetuneTests
{
    private static AdapterConfig For(string method, MethodOptions o)
    {
        var config = ModelConfig.Load(FinetuneData.Bloom);
        return FinetuneSetup.ConfigFor(method, o, TaskKind.CausalLm, FinetuneData.Bloom, HfTokenizer.FromFolder(FinetuneData.Bloom), config.Dimensions);
    }

    [Fact]
    public void Options_build_the_configs_peft_would()
    {
        var defaults = Assert.IsType<OftConfig>(For("oft", new MethodOptions()));
        Assert.Equal((0, (int?)32, true, 5), (defaults.R, defaults.OftBlockSize, defaults.UseCayleyNeumann, defaults.NumCayleyNeumannTerms));
        var blocks = Assert.IsType<OftConfig>(For("oft", new MethodOptions { R = 4, TargetModules = ["dense"] }));
        Assert.Equal((4, (int?)0, "['dense']"), (blocks.R, blocks.OftBlockSize, blocks.TargetModules!.ToString()));
        var size = Assert.IsType<OftConfig>(For("oft", new MethodOptions { OftBlockSize = 8 }));
        Assert.Equal((0, (int?)8), (size.R, size.OftBlockSize));
        var hra = Assert.IsType<HraConfig>(For("hra", new MethodOptions { R = 4, ApplyGs = true }));
        Assert.Equal((4, true, true), (hra.R, hra.ApplyGs, hra.InitWeights));
        Assert.Equal(8, Assert.IsType<HraConfig>(For("hra", new MethodOptions())).R);
        var fourier = Assert.IsType<FourierFtConfig>(For("fourierft", new MethodOptions()));
        Assert.Equal((1000, 150.0, (long?)777, false), (fourier.NFrequency, fourier.Scaling, fourier.RandomLocSeed, fourier.InitWeights));
        var chosen = Assert.IsType<FourierFtConfig>(For("fourierft", new MethodOptions { NFrequency = 32, Scaling = 10, RandomLocSeed = 5 }));
        Assert.Equal((32, 10.0, (long?)5), (chosen.NFrequency, chosen.Scaling, chosen.RandomLocSeed));
        var boft = Assert.IsType<BoftConfig>(For("boft", new MethodOptions()));
        Assert.Equal((4, 0, 1, "none", true), (boft.BoftBlockSize, boft.BoftBlockNum, boft.BoftNButterflyFactor, boft.Bias, boft.InitWeights));
        var boftBlocks = Assert.IsType<BoftConfig>(For("boft", new MethodOptions { BoftBlockNum = 8, BoftNButterflyFactor = 2, TargetModules = ["dense"] }));
        Assert.Equal((0, 8, 2, "['dense']"), (boftBlocks.BoftBlockSize, boftBlocks.BoftBlockNum, boftBlocks.BoftNButterflyFactor, boftBlocks.TargetModules!.ToString()));
        var boftSize = Assert.IsType<BoftConfig>(For("boft", new MethodOptions { BoftBlockSize = 16 }));
        Assert.Equal((16, 0), (boftSize.BoftBlockSize, boftSize.BoftBlockNum));
    }

    [Theory]
    [InlineData("lora", "--oft-block-size")]
    [InlineData("oft", "--apply-gs")]
    [InlineData("hra", "--lora-alpha")]
    [InlineData("oft", "--alpha")]
    [InlineData("lora", "--n-frequency")]
    [InlineData("hra", "--random-loc-seed")]
    [InlineData("fourierft", "--r (use --n-frequency)")]
    [InlineData("lora", "--boft-block-size")]
    [InlineData("oft", "--boft-block-num")]
    [InlineData("hra", "--boft-n-butterfly-factor")]
    [InlineData("boft", "--r (use --boft-block-num)")]
    [InlineData("boft", "--lora-alpha")]
    public void Options_of_another_method_are_refused_naming_the_option(string method, string option)
    {
        var o = option switch
        {
            "--oft-block-size" => new MethodOptions { OftBlockSize = 8 },
            "--apply-gs" => new MethodOptions { ApplyGs = true },
            "--alpha" => new MethodOptions { Alpha = 4 },
            "--n-frequency" => new MethodOptions { NFrequency = 8 },
            "--random-loc-seed" => new MethodOptions { RandomLocSeed = 1 },
            "--r (use --n-frequency)" or "--r (use --boft-block-num)" => new MethodOptions { R = 4 },
            "--boft-block-size" => new MethodOptions { BoftBlockSize = 8 },
            "--boft-block-num" => new MethodOptions { BoftBlockNum = 8 },
            "--boft-n-butterfly-factor" => new MethodOptions { BoftNButterflyFactor = 2 },
            _ => new MethodOptions { LoraAlpha = 4 },
        };
        var ex = Assert.Throws<PeftOnnxException>(() => For(method, o));
        Assert.Equal($"{option} does not apply to --method {method}", ex.Message);
    }

    [Fact]
    public void Oft_block_count_and_size_together_are_refused()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => For("oft", new MethodOptions { R = 4, OftBlockSize = 8 }));
        Assert.Equal("--r and --oft-block-size exclude each other for --method oft (give the block count or the block size)", ex.Message);
        ex = Assert.Throws<PeftOnnxException>(() => For("boft", new MethodOptions { BoftBlockSize = 8, BoftBlockNum = 8 }));
        Assert.Equal("--boft-block-size and --boft-block-num exclude each other for --method boft (give the block size or the block count)", ex.Message);
    }

    [Theory]
    [InlineData("oft", new[] { "--oft-block-size", "16" })]
    [InlineData("hra", new[] { "--r", "4" })]
    [InlineData("fourierft", new[] { "--n-frequency", "64", "--scaling", "25" })]
    [InlineData("boft", new[] { "--boft-block-num", "4", "--boft-n-butterfly-factor", "2" })]
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
