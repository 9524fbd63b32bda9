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

/// <summary>
/// `train --data --method` with the methods beyond the five (loha, lokr, vera, adalora, oft, hra, fourierft, boft),
/// the same checks for each: the options build PEFT's configs, another method's options and conflicting options are
/// refused by name, and a short run trains and saves a loadable adapter.
/// </summary>
public class CurrentMethodFinetuneTests
{
    private static AdapterConfig For(string method, MethodOptions o)
    {
        var config = ModelConfig.Load(FinetuneData.Bloom);
        return FinetuneSetup.ConfigFor(method, o, TaskKind.CausalLm, FinetuneData.Bloom, HfTokenizer.FromFolder(FinetuneData.Bloom), config.Dimensions);
    }

    /// <summary>A named set of options, the config type it must build and the keys its adapter_config.json must hold.</summary>
    private sealed record ConfigCase(string Method, MethodOptions Options, Type Config, string Keys);

    private static readonly Dictionary<string, ConfigCase> ConfigCases = new()
    {
        ["loha"] = new("loha", new MethodOptions { R = 4, Alpha = 16, TargetModules = ["dense"] }, typeof(LoHaConfig), """{"r": 4, "alpha": 16.0, "target_modules": ["dense"]}"""),
        ["lokr"] = new("lokr", new MethodOptions { R = 2, Alpha = 2, DecomposeBoth = true, DecomposeFactor = 4 }, typeof(LoKrConfig), """{"r": 2, "alpha": 2.0, "decompose_both": true, "decompose_factor": 4}"""),
        ["lokr defaults"] = new("lokr", new MethodOptions(), typeof(LoKrConfig), """{"r": 8, "alpha": 8.0, "decompose_both": false, "decompose_factor": -1, "init_weights": true}"""),
        ["vera"] = new("vera", new MethodOptions { R = 16, DInitial = 0.5, ProjectionPrngKey = 7, TargetModules = ["dense"] }, typeof(VeraConfig),
            """{"r": 16, "d_initial": 0.5, "projection_prng_key": 7, "target_modules": ["dense"]}"""),
        ["vera defaults"] = new("vera", new MethodOptions(), typeof(VeraConfig), """{"r": 256, "d_initial": 0.1, "projection_prng_key": 0, "save_projection": true}"""),
        ["adalora"] = new("adalora", new MethodOptions { InitR = 4, LoraAlpha = 16, OrthRegWeight = 0.25 }, typeof(AdaLoraConfig),
            """{"init_r": 4, "target_r": 4, "lora_alpha": 16.0, "orth_reg_weight": 0.25}"""),
        ["adalora defaults"] = new("adalora", new MethodOptions(), typeof(AdaLoraConfig), """{"init_r": 12, "target_r": 12, "lora_alpha": 8.0, "orth_reg_weight": 0.5}"""),
        ["oft defaults"] = new("oft", new MethodOptions(), typeof(OftConfig), """{"r": 0, "oft_block_size": 32, "use_cayley_neumann": true, "num_cayley_neumann_terms": 5}"""),
        ["oft blocks"] = new("oft", new MethodOptions { R = 4, TargetModules = ["dense"] }, typeof(OftConfig), """{"r": 4, "oft_block_size": 0, "target_modules": ["dense"]}"""),
        ["oft size"] = new("oft", new MethodOptions { OftBlockSize = 8 }, typeof(OftConfig), """{"r": 0, "oft_block_size": 8}"""),
        ["hra"] = new("hra", new MethodOptions { R = 4, ApplyGs = true }, typeof(HraConfig), """{"r": 4, "apply_GS": true, "init_weights": true}"""),
        ["hra defaults"] = new("hra", new MethodOptions(), typeof(HraConfig), """{"r": 8}"""),
        ["fourierft defaults"] = new("fourierft", new MethodOptions(), typeof(FourierFtConfig), """{"n_frequency": 1000, "scaling": 150.0, "random_loc_seed": 777, "init_weights": false}"""),
        ["fourierft"] = new("fourierft", new MethodOptions { NFrequency = 32, Scaling = 10, RandomLocSeed = 5 }, typeof(FourierFtConfig), """{"n_frequency": 32, "scaling": 10.0, "random_loc_seed": 5}"""),
        ["boft defaults"] = new("boft", new MethodOptions(), typeof(BoftConfig),
            """{"boft_block_size": 4, "boft_block_num": 0, "boft_n_butterfly_factor": 1, "bias": "none", "init_weights": true}"""),
        ["boft blocks"] = new("boft", new MethodOptions { BoftBlockNum = 8, BoftNButterflyFactor = 2, TargetModules = ["dense"] }, typeof(BoftConfig),
            """{"boft_block_size": 0, "boft_block_num": 8, "boft_n_butterfly_factor": 2, "target_modules": ["dense"]}"""),
        ["boft size"] = new("boft", new MethodOptions { BoftBlockSize = 16 }, typeof(BoftConfig), """{"boft_block_size": 16, "boft_block_num": 0}"""),
    };

    public static TheoryData<string> ConfigCaseNames() => new(ConfigCases.Keys);

    [Theory, MemberData(nameof(ConfigCaseNames))]
    public void Options_build_the_configs_peft_would(string name)
    {
        var c = ConfigCases[name];
        var config = For(c.Method, c.Options);
        Assert.IsType(c.Config, config);
        Assert.Equal(c.Method.ToUpperInvariant(), config.PeftType);
        var saved = JsonDocument.Parse(config.ToJson()).RootElement;
        foreach (var key in JsonDocument.Parse(c.Keys).RootElement.EnumerateObject())
            Assert.True(saved.TryGetProperty(key.Name, out var value) && JsonElement.DeepEquals(key.Value, value),
                $"{name}: {key.Name} = {(saved.TryGetProperty(key.Name, out var v) ? v.GetRawText() : "(absent)")}, expected {key.Value.GetRawText()}");
    }

    /// <summary>The option each refusal case gives (a value that would be valid for the method it belongs to).</summary>
    private static readonly Dictionary<string, MethodOptions> GivenOption = new()
    {
        ["--alpha"] = new() { Alpha = 4 },
        ["--lora-alpha (use --alpha)"] = new() { LoraAlpha = 4 },
        ["--lora-alpha"] = new() { LoraAlpha = 4 },
        ["--decompose-factor"] = new() { DecomposeFactor = 4 },
        ["--decompose-both"] = new() { DecomposeBoth = true },
        ["--d-initial"] = new() { DInitial = 0.2 },
        ["--projection-prng-key"] = new() { ProjectionPrngKey = 3 },
        ["--init-r"] = new() { InitR = 4 },
        ["--orth-reg-weight"] = new() { OrthRegWeight = 0.1 },
        ["--r (use --init-r)"] = new() { R = 4 },
        ["--r (use --n-frequency)"] = new() { R = 4 },
        ["--r (use --boft-block-num)"] = new() { R = 4 },
        ["--oft-block-size"] = new() { OftBlockSize = 8 },
        ["--apply-gs"] = new() { ApplyGs = true },
        ["--n-frequency"] = new() { NFrequency = 8 },
        ["--random-loc-seed"] = new() { RandomLocSeed = 1 },
        ["--boft-block-size"] = new() { BoftBlockSize = 8 },
        ["--boft-block-num"] = new() { BoftBlockNum = 8 },
        ["--boft-n-butterfly-factor"] = new() { BoftNButterflyFactor = 2 },
    };

    [Theory]
    [InlineData("lora", "--alpha")]
    [InlineData("loha", "--lora-alpha (use --alpha)")]
    [InlineData("loha", "--decompose-factor")]
    [InlineData("ia3", "--decompose-both")]
    [InlineData("lora", "--d-initial")]
    [InlineData("adalora", "--projection-prng-key")]
    [InlineData("vera", "--init-r")]
    [InlineData("lora", "--orth-reg-weight")]
    [InlineData("adalora", "--r (use --init-r)")]
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
        var ex = Assert.Throws<PeftOnnxException>(() => For(method, GivenOption[option]));
        Assert.Equal($"{option} does not apply to --method {method}", ex.Message);
    }

    public static TheoryData<string, string> ConflictNames() => new()
    {
        { "oft blocks and size", "--r and --oft-block-size exclude each other for --method oft (give the block count or the block size)" },
        { "boft blocks and size", "--boft-block-size and --boft-block-num exclude each other for --method boft (give the block size or the block count)" },
        { "adalora re-allocation", "--target-r 4 differs from --init-r 8: AdaLoRA's rank re-allocation (update_and_allocate) is not implemented by train --data (give --target-r equal to --init-r, or leave it out)" },
    };

    [Theory, MemberData(nameof(ConflictNames))]
    public void Conflicting_options_are_refused_naming_them(string name, string expected)
    {
        var (method, options) = name switch
        {
            "oft blocks and size" => ("oft", new MethodOptions { R = 4, OftBlockSize = 8 }),
            "boft blocks and size" => ("boft", new MethodOptions { BoftBlockSize = 8, BoftBlockNum = 8 }),
            _ => ("adalora", new MethodOptions { InitR = 8, TargetR = 4 }),
        };
        var ex = Assert.Throws<PeftOnnxException>(() => For(method, options));
        Assert.Equal(expected, ex.Message);
    }

    [Theory]
    [InlineData("loha", new[] { "--r", "4", "--alpha", "8" }, "5e-3")]
    [InlineData("lokr", new[] { "--r", "2", "--alpha", "2", "--decompose-both", "--decompose-factor", "8" }, "5e-3")]
    [InlineData("vera", new[] { "--r", "16", "--d-initial", "0.1" }, "5e-2")]
    [InlineData("adalora", new[] { "--init-r", "4", "--target-r", "4", "--lora-alpha", "8" }, "5e-3")]
    [InlineData("oft", new[] { "--oft-block-size", "16" }, "5e-3")]
    [InlineData("hra", new[] { "--r", "4" }, "5e-3")]
    [InlineData("fourierft", new[] { "--n-frequency", "64", "--scaling", "25" }, "5e-3")]
    [InlineData("boft", new[] { "--boft-block-num", "4", "--boft-n-butterfly-factor", "2" }, "5e-3")]
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
