using System.Text;
using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.PeftConfigs;

/// <summary>LoHa / LoKr adapter_config.json: PEFT's keys and defaults, newer keys kept, unsupported values refused by name.</summary>
public class LycorisConfigTests
{
    private static AdapterConfig Parse(string json) => AdapterConfig.Parse(Encoding.UTF8.GetBytes(json), "adapter_config.json");

    [Fact]
    public void Defaults_are_peft_defaults()
    {
        var loha = Assert.IsType<LoHaConfig>(Parse("""{"peft_type": "LOHA"}"""));
        Assert.Equal((8, 8.0, 0.0, 0.0, true, false), (loha.R, loha.Alpha, loha.RankDropout, loha.ModuleDropout, loha.InitWeights, loha.UseEffectiveConv2d));
        var lokr = Assert.IsType<LoKrConfig>(Parse("""{"peft_type": "LOKR"}"""));
        Assert.Equal((8, 8.0, false, -1), (lokr.R, lokr.Alpha, lokr.DecomposeBoth, lokr.DecomposeFactor));
    }

    [Fact]
    public void Keys_of_newer_peft_are_kept_and_written_back_and_no_fan_in_fan_out_appears()
    {
        const string json = """{"peft_type": "LOKR", "r": 2, "alpha": 4, "peft_version": "0.20.0", "rank_dropout_scale": false, "exclude_modules": null, "target_modules": ["q_proj"]}""";
        var config = Parse(json);
        var written = JsonDocument.Parse(config.ToJson()).RootElement;
        Assert.Equal("0.20.0", written.GetProperty("peft_version").GetString());
        Assert.False(written.GetProperty("rank_dropout_scale").GetBoolean());
        Assert.Equal(JsonValueKind.Null, written.GetProperty("exclude_modules").ValueKind);
        Assert.Equal(-1, written.GetProperty("decompose_factor").GetInt32());
        Assert.True(written.TryGetProperty("use_effective_conv2d", out _));
        Assert.False(written.TryGetProperty("fan_in_fan_out", out _));
    }

    [Fact]
    public void Rank_and_alpha_patterns_pick_the_first_key_matching_the_end_of_the_module_name()
    {
        var arch = Architecture.For(ModelConfig.Load(Paths.Case("opt", "base_model")));
        var config = (LycorisConfig)Parse("""{"peft_type": "LOKR", "r": 2, "alpha": 4, "target_modules": ["q_proj", "fc1"], "rank_pattern": {"layers.1.fc1": 3}, "alpha_pattern": {"fc1": 9}}""");
        var ranks = config.FindTargets(arch).ToDictionary(t => t.Path, t => (t.Rank, t.Alpha, t.Scaling));
        Assert.Equal((2, 4.0, 2.0), ranks["model.decoder.layers.0.self_attn.q_proj"]);
        // "fc1" is alpha_pattern's key: r falls back to r, alpha is 9
        Assert.Equal((2, 9.0, 4.5), ranks["model.decoder.layers.0.fc1"]);
        // "layers.1.fc1" comes first (rank keys before alpha keys): r 3, and alpha_pattern has no such key
        Assert.Equal((3, 4.0, 4.0 / 3), ranks["model.decoder.layers.1.fc1"]);
        // q_proj [64, 64] = kron([8, 8], [8, 8]), w2 as r x (8 + 8); fc1 [128, 64] = kron([8, 8], [16, 8]), w2 as r x (16 + 8)
        Assert.Equal(2 * (64 + 2 * 16) + (64 + 2 * 24) + (64 + 3 * 24), config.CountParameters(arch).Trainable);
    }

    [Theory]
    [InlineData("""{"peft_type": "LOKR", "init_weights": "lycoris"}""", "init_weights")]
    [InlineData("""{"peft_type": "LOHA", "layers_pattern": "layers"}""", "layers_pattern = \"layers\" is not supported for LOHA adapters")]
    [InlineData("""{"peft_type": "LOHA", "alpha": 1e308}""", "alpha = 1e+308 is invalid")]
    [InlineData("""{"peft_type": "LOKR", "module_dropout": -0.5}""", "module_dropout = -0.5 is invalid (expected a probability in [0, 1))")]
    [InlineData("""{"peft_type": "LOHA", "rank_pattern": {"q_proj": 0}}""", "rank_pattern[\"q_proj\"] = 0 is invalid (expected a positive integer)")]
    public void Unsupported_or_invalid_values_are_refused_naming_the_key(string json, string expected)
    {
        var ex = Assert.Throws<PeftOnnxException>(() => Parse(json));
        Assert.Contains(expected, ex.Message);
        Assert.StartsWith("adapter_config.json", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }
}
