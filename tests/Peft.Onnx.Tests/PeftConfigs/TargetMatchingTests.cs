using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.PeftConfigs;

/// <summary>
/// PEFT 0.7.1's placement rules on BLOOM's module names (transformer.h.{i}.self_attention.query_key_value,
/// .self_attention.dense, .mlp.dense_h_to_4h, .mlp.dense_4h_to_h, lm_head).
/// </summary>
public class TargetMatchingTests
{
    private static readonly Architecture Bloom = PeftFixtures.TinyBloom();

    private static LoraConfig Lora(string keys) => (LoraConfig)AdapterConfigJson.Parse($$"""{"peft_type": "LORA", "r": 4, "lora_alpha": 8, {{keys}}}""");
    private static Ia3Config Ia3(string keys) => (Ia3Config)AdapterConfigJson.Parse($$"""{"peft_type": "IA3", {{keys}}}""");

    private static string[] Paths(IEnumerable<TargetMatch> matches) => matches.Select(m => m.Path).ToArray();

    [Fact]
    public void List_entry_matches_the_name_or_a_dotted_suffix()
    {
        // "dense" is the last name component of self_attention.dense only: dense_h_to_4h does not end in ".dense".
        Assert.Equal(new[] { "transformer.h.0.self_attention.dense", "transformer.h.1.self_attention.dense" },
            Paths(Lora("""  "target_modules": ["dense"]  """).FindTargets(Bloom)));
        Assert.Equal(new[] { "transformer.h.0.mlp.dense_4h_to_h", "transformer.h.1.mlp.dense_4h_to_h" },
            Paths(Lora("""  "target_modules": ["mlp.dense_4h_to_h"]  """).FindTargets(Bloom)));
        Assert.Equal(new[] { "transformer.h.1.self_attention.query_key_value" },
            Paths(Lora("""  "target_modules": ["transformer.h.1.self_attention.query_key_value"]  """).FindTargets(Bloom)));
    }

    [Fact]
    public void Matches_come_in_architecture_order_whatever_the_list_order()
    {
        var all = Lora("""  "target_modules": ["dense_4h_to_h", "query_key_value", "dense", "dense_h_to_4h"]  """).FindTargets(Bloom);
        Assert.Equal(Bloom.Linears.Where(l => l.Path != "lm_head").Select(l => l.Path), Paths(all));
    }

    [Fact]
    public void Regex_must_match_the_whole_name()
    {
        Assert.Equal(new[] { "transformer.h.0.self_attention.dense", "transformer.h.1.self_attention.dense" },
            Paths(Lora("""  "target_modules": ".*dense"  """).FindTargets(Bloom)));
        Assert.Equal(new[] { "transformer.h.1.self_attention.query_key_value", "transformer.h.1.mlp.dense_4h_to_h" },
            Paths(Lora("""  "target_modules": "transformer\\.h\\.1\\..*(query_key_value|4h_to_h)"  """).FindTargets(Bloom)));
        // A regex that matches only part of a name matches nothing (re.fullmatch).
        var ex = Assert.Throws<PeftOnnxException>(() => Lora("""  "target_modules": "query_key_value"  """).FindTargets(Bloom));
        Assert.Contains("'query_key_value'", ex.Message);
    }

    [Fact]
    public void Suffix_match_needs_a_whole_name_component()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => Lora("""  "target_modules": ["key_value", "4h"]  """).FindTargets(Bloom));
        Assert.StartsWith("test/adapter_config.json: target_modules ['key_value', '4h'] matches no module of BloomForCausalLM", ex.Message);
        Assert.Contains("query_key_value, dense, dense_h_to_4h, dense_4h_to_h, lm_head", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Matching_a_module_that_is_not_linear_fails()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => Lora("""  "target_modules": ["mlp"]  """).FindTargets(Bloom));
        Assert.Contains("'transformer.h.0.mlp', which is not a linear layer", ex.Message);
        ex = Assert.Throws<PeftOnnxException>(() => Lora("""  "target_modules": ["word_embeddings"]  """).FindTargets(Bloom));
        Assert.Contains("'transformer.word_embeddings'", ex.Message);
    }

    [Fact]
    public void Null_targets_use_peft_defaults_for_the_family()
    {
        Assert.Equal(new[] { "transformer.h.0.self_attention.query_key_value", "transformer.h.1.self_attention.query_key_value" },
            Paths(Lora("""  "target_modules": null  """).FindTargets(Bloom)));
        var ia3 = Ia3("""  "target_modules": null, "feedforward_modules": null  """).FindTargets(Bloom);
        Assert.Equal(new[]
        {
            "transformer.h.0.self_attention.query_key_value", "transformer.h.0.mlp.dense_4h_to_h",
            "transformer.h.1.self_attention.query_key_value", "transformer.h.1.mlp.dense_4h_to_h",
        }, Paths(ia3));
        Assert.Equal(new[] { false, true, false, true }, ia3.Select(m => m.IsFeedforward));
    }

    [Theory]
    [InlineData("1", new[] { 1 })]
    [InlineData("[0]", new[] { 0 })]
    [InlineData("[0, 1]", new[] { 0, 1 })]
    [InlineData("[5]", new int[0])]
    public void Layers_to_transform_keeps_the_listed_layers(string layers, int[] expected)
    {
        var lora = Lora($$"""  "target_modules": ["query_key_value", "dense"], "layers_to_transform": {{layers}}  """);
        if (expected.Length == 0)
        {
            var ex = Assert.Throws<PeftOnnxException>(() => lora.FindTargets(Bloom));
            Assert.Contains($"with layers_to_transform {(layers == "1" ? "1" : layers)}", ex.Message);
            return;
        }
        var wanted = expected.SelectMany(i => new[] { $"transformer.h.{i}.self_attention.query_key_value", $"transformer.h.{i}.self_attention.dense" });
        Assert.Equal(wanted, Paths(lora.FindTargets(Bloom)));
    }

    [Fact]
    public void Layers_pattern_names_the_module_list()
    {
        var h = Lora("""  "target_modules": ["query_key_value"], "layers_to_transform": [1], "layers_pattern": "h"  """);
        Assert.Equal(new[] { "transformer.h.1.self_attention.query_key_value" }, Paths(h.FindTargets(Bloom)));
        // A pattern absent from the names leaves every module without a layer index: nothing is adapted.
        var layers = Lora("""  "target_modules": ["query_key_value"], "layers_to_transform": [1], "layers_pattern": "layers"  """);
        var ex = Assert.Throws<PeftOnnxException>(() => layers.FindTargets(Bloom));
        Assert.Contains("with layers_to_transform [1] and layers_pattern layers", ex.Message);
        // A list of patterns: the first one found in the name decides.
        var list = Lora("""  "target_modules": ["query_key_value"], "layers_to_transform": 0, "layers_pattern": ["blocks", "h"]  """);
        Assert.Equal(new[] { "transformer.h.0.self_attention.query_key_value" }, Paths(list.FindTargets(Bloom)));
    }

    [Fact]
    public void Rank_and_alpha_patterns_override_per_module()
    {
        var lora = Lora("""  "target_modules": ["query_key_value", "dense"], "rank_pattern": {"h.1.self_attention.query_key_value": 16}, "alpha_pattern": {"dense": 32}  """);
        var byPath = lora.FindTargets(Bloom).ToDictionary(m => m.Path);
        Assert.Equal((4, 8.0), (byPath["transformer.h.0.self_attention.query_key_value"].Rank, byPath["transformer.h.0.self_attention.query_key_value"].Alpha));
        Assert.Equal((16, 8.0), (byPath["transformer.h.1.self_attention.query_key_value"].Rank, byPath["transformer.h.1.self_attention.query_key_value"].Alpha));
        Assert.Equal((4, 32.0), (byPath["transformer.h.0.self_attention.dense"].Rank, byPath["transformer.h.0.self_attention.dense"].Alpha));
        Assert.Equal(0.5, byPath["transformer.h.1.self_attention.query_key_value"].Scaling);
        Assert.Equal(8.0, byPath["transformer.h.0.self_attention.dense"].Scaling);
    }

    [Fact]
    public void One_pattern_key_decides_both_rank_and_alpha()
    {
        // PEFT picks the first matching key over rank keys then alpha keys, and reads both r and alpha under it:
        // the rank key "dense" wins for h.0's dense, so alpha_pattern's more specific key is not used there.
        var lora = Lora("""  "target_modules": ["dense"], "rank_pattern": {"dense": 2}, "alpha_pattern": {"h.0.self_attention.dense": 32}  """);
        var matches = lora.FindTargets(Bloom);
        Assert.All(matches, m => Assert.Equal((2, 8.0), (m.Rank, m.Alpha)));
        Assert.Equal("dense", lora.PatternKeyFor("transformer.h.0.self_attention.dense"));
        // Keys are regular expressions matched at a dotted boundary up to the end of the name.
        Assert.Equal("h\\.\\d\\.self_attention\\.dense", Lora("""  "rank_pattern": {"h\\.\\d\\.self_attention\\.dense": 2}  """).PatternKeyFor("transformer.h.1.self_attention.dense"));
        Assert.Equal("transformer.h.1.mlp.dense_4h_to_h", lora.PatternKeyFor("transformer.h.1.mlp.dense_4h_to_h"));
    }

    [Fact]
    public void Rslora_scales_by_the_square_root_of_the_rank()
    {
        var lora = Lora("""  "target_modules": ["query_key_value"], "use_rslora": true  """);
        Assert.All(lora.FindTargets(Bloom), m => Assert.Equal(4.0, m.Scaling));
    }

    [Fact]
    public void Ia3_feedforward_is_a_plain_suffix_while_targets_need_a_dot()
    {
        // "4h_to_h" as a target matches nothing (no ".4h_to_h" suffix), but as a feed-forward entry it marks
        // dense_4h_to_h. (PEFT requires feedforward_modules to be a subset of target_modules, hence both lists.)
        var ia3 = Ia3("""  "target_modules": ["query_key_value", "dense_4h_to_h", "4h_to_h"], "feedforward_modules": ["4h_to_h"]  """);
        Assert.Throws<PeftOnnxException>(() => Ia3("""  "target_modules": ["4h_to_h"]  """).FindTargets(Bloom));
        var ff = ia3.FindTargets(Bloom).ToDictionary(m => m.Path, m => m.IsFeedforward);
        Assert.True(ff["transformer.h.0.mlp.dense_4h_to_h"]);
        Assert.False(ff["transformer.h.0.self_attention.query_key_value"]);
        // A feed-forward vector has one scale per input feature (256), the others one per output (3 * 64).
        Assert.Equal(2 * (256 + 192), ParameterCount.Count(Bloom, ia3).Trainable);
    }

    [Fact]
    public void Modules_to_save_are_copied_not_adapted()
    {
        // modules_to_save is a plain suffix test and wins over target_modules for the same module.
        var lora = Lora("""  "target_modules": ["query_key_value", "dense"], "modules_to_save": ["h.1.self_attention.dense", "lm_head"]  """);
        var placement = lora.Place(Bloom);
        Assert.Equal(new[] { "transformer.h.1.self_attention.dense", "lm_head" }, placement.ModulesToSave);
        Assert.Equal(new[]
        {
            "transformer.h.0.self_attention.query_key_value", "transformer.h.0.self_attention.dense",
            "transformer.h.1.self_attention.query_key_value",
        }, Paths(placement.Targets));
    }

    [Fact]
    public void Targets_inside_a_saved_module_fail_as_in_peft()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => Lora("""  "target_modules": ["dense_4h_to_h"], "modules_to_save": ["h.0.mlp"]  """).FindTargets(Bloom));
        Assert.Contains("'transformer.h.0.mlp.dense_4h_to_h' lies inside 'transformer.h.0.mlp'", ex.Message);
    }

    [Fact]
    public void Prepared_config_is_what_peft_saves_after_attaching()
    {
        var gpt2 = Architecture.For(ModelConfig.Load(PeftFixtures.BaseDir("gpt2/lora")));
        // PEFT fills the family's default targets and turns fan_in_fan_out on for GPT-2's Conv1D layers.
        var lora = (LoraConfig)Lora("""  "target_modules": null, "fan_in_fan_out": false  """).PreparedFor(gpt2);
        Assert.Equal(new[] { "c_attn" }, lora.TargetModules!.Names);
        Assert.True(lora.FanInFanOut);
        // ... and off again for nn.Linear layers.
        var bloom = (LoraConfig)Lora("""  "fan_in_fan_out": true  """).PreparedFor(Bloom);
        Assert.False(bloom.FanInFanOut);
        Assert.Equal(new[] { "query_key_value" }, bloom.TargetModules!.Names);

        var ia3 = (Ia3Config)Ia3("""  "target_modules": null, "feedforward_modules": null  """).PreparedFor(gpt2);
        Assert.Equal(new[] { "c_attn", "mlp.c_proj" }, ia3.TargetModules!.Names);
        Assert.Equal(new[] { "mlp.c_proj" }, ia3.FeedforwardModules!.Names);
        Assert.True(ia3.FanInFanOut);
        // The fixture configs are what PEFT saved: preparing them again changes nothing.
        var saved = AdapterConfig.Load(PeftFixtures.AdapterDir("gpt2/ia3"));
        Assert.Equal(saved.ToJson(), saved.PreparedFor(gpt2).ToJson());
    }
}
