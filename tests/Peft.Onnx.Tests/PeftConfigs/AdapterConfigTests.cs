using System.Text.Json;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.PeftConfigs;

/// <summary>adapter_config.json: dispatch on peft_type, PEFT 0.7.1 defaults, and byte-identical write-back.</summary>
public class AdapterConfigTests
{
    public static TheoryData<string> ReferenceCases => new(PeftFixtures.ReferenceCases);
    public static TheoryData<string> DocCases => new(PeftFixtures.DocCases);

    private static readonly Dictionary<string, Type> TypeByPeftType = new()
    {
        ["LORA"] = typeof(LoraConfig),
        ["IA3"] = typeof(Ia3Config),
        ["PROMPT_TUNING"] = typeof(PromptTuningConfig),
        ["P_TUNING"] = typeof(PromptEncoderConfig),
        ["PREFIX_TUNING"] = typeof(PrefixTuningConfig),
    };

    [Theory, MemberData(nameof(ReferenceCases))]
    public void Reference_config_loads_as_its_method_and_saves_byte_identical(string name) =>
        AssertLoadsAndRoundTrips(Path.Combine(PeftFixtures.AdapterDir(name), AdapterConfig.FileName));

    [Theory, MemberData(nameof(ReferenceCases))]
    public void Trained_reference_config_saves_byte_identical(string name) =>
        AssertLoadsAndRoundTrips(Path.Combine(Paths.Reference, name, "adapter_trained", AdapterConfig.FileName));

    [Theory, MemberData(nameof(DocCases))]
    public void Doc_config_loads_as_its_method_and_saves_byte_identical(string name) =>
        AssertLoadsAndRoundTrips(Path.Combine(PeftFixtures.DocDir(name), AdapterConfig.FileName));

    private static void AssertLoadsAndRoundTrips(string file)
    {
        var text = File.ReadAllText(file);
        var config = AdapterConfig.Load(file);
        var peftType = JsonDocument.Parse(text).RootElement.GetProperty("peft_type").GetString()!;
        Assert.IsType(TypeByPeftType[peftType], config);
        Assert.Equal(file, config.SourcePath);
        // PEFT writes json.dumps(sort_keys=True, indent=2); so do we, so the text comes back unchanged.
        Assert.Equal(text, config.ToJson());

        var dir = Paths.TempDir();
        try
        {
            config.Save(dir);
            Assert.Equal(text, File.ReadAllText(Path.Combine(dir, AdapterConfig.FileName)));
            var again = AdapterConfig.Load(dir);
            Assert.Equal(text, again.ToJson());
            Assert.Empty(Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Lora_fixture_values_are_read()
    {
        var lora = Assert.IsType<LoraConfig>(AdapterConfig.Load(PeftFixtures.AdapterDir("llama/lora_all")));
        Assert.Equal(4, lora.R);
        Assert.Equal(8, lora.LoraAlpha);
        Assert.Equal(0.0, lora.LoraDropout);
        Assert.Equal("none", lora.Bias);
        Assert.Equal(["gate_proj", "v_proj", "o_proj", "k_proj", "up_proj", "down_proj", "q_proj"], lora.TargetModules!.Names);
        Assert.Equal(InitLoraWeights.Default, lora.InitLoraWeights);
        Assert.Equal("CAUSAL_LM", lora.TaskType);
        Assert.True(lora.InferenceMode);
        Assert.Null(lora.UseRslora);
        Assert.Empty(lora.RankPattern!);
    }

    [Fact]
    public void Prompt_learning_fixture_values_are_read()
    {
        var text = Assert.IsType<PromptTuningConfig>(AdapterConfig.Load(PeftFixtures.AdapterDir("t5/prompt_tuning_text")));
        Assert.Equal(8, text.NumVirtualTokens);
        Assert.Equal(2, text.NumTransformerSubmodules);
        Assert.Equal("TEXT", text.PromptTuningInit);
        Assert.Equal("Classify if the tweet is a complaint or not:", text.PromptTuningInitText);
        Assert.Equal("tokenizer", text.TokenizerNameOrPath);
        Assert.False(text.TokenizerKwargs!.Value.GetProperty("use_fast").GetBoolean());

        var lstm = Assert.IsType<PromptEncoderConfig>(AdapterConfig.Load(PeftFixtures.AdapterDir("gpt2/p_tuning_lstm")));
        Assert.Equal("LSTM", lstm.EncoderReparameterizationType);
        Assert.Equal(32, lstm.EncoderHiddenSize);

        var prefix = Assert.IsType<PrefixTuningConfig>(AdapterConfig.Load(PeftFixtures.AdapterDir("opt/prefix_proj")));
        Assert.True(prefix.PrefixProjection);
        Assert.Equal(2, prefix.NumLayers);
    }

    [Fact]
    public void Missing_keys_take_peft_071_defaults_and_are_written_in_full()
    {
        var lora = (LoraConfig)AdapterConfigJson.Parse("""{"peft_type": "LORA"}""");
        Assert.Equal(8, lora.R);
        Assert.Equal(8, lora.LoraAlpha);
        Assert.Equal(0.0, lora.LoraDropout);
        Assert.Equal("none", lora.Bias);
        Assert.False(lora.FanInFanOut);
        Assert.Null(lora.TargetModules);
        Assert.Equal("megatron.core", lora.MegatronCore);
        Assert.Equal(
            ["alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode", "init_lora_weights",
             "layers_pattern", "layers_to_transform", "loftq_config", "lora_alpha", "lora_dropout", "megatron_config", "megatron_core",
             "modules_to_save", "peft_type", "r", "rank_pattern", "revision", "target_modules", "task_type"],
            Keys(lora.ToJson()));

        var ia3 = (Ia3Config)AdapterConfigJson.Parse("""{"peft_type": "IA3"}""");
        Assert.True(ia3.InitIa3Weights);
        Assert.Equal(
            ["auto_mapping", "base_model_name_or_path", "fan_in_fan_out", "feedforward_modules", "inference_mode", "init_ia3_weights",
             "modules_to_save", "peft_type", "revision", "target_modules", "task_type"],
            Keys(ia3.ToJson()));

        var pt = (PromptEncoderConfig)AdapterConfigJson.Parse("""{"peft_type": "P_TUNING", "num_virtual_tokens": 4}""");
        Assert.Equal("MLP", pt.EncoderReparameterizationType);
        Assert.Equal(2, pt.EncoderNumLayers);
        Assert.Null(pt.EncoderHiddenSize);
        Assert.Contains("\"encoder_dropout\": 0.0", pt.ToJson());

        var prompt = (PromptTuningConfig)AdapterConfigJson.Parse("""{"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4}""");
        Assert.Equal("RANDOM", prompt.PromptTuningInit);
        var prefix = (PrefixTuningConfig)AdapterConfigJson.Parse("""{"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 4}""");
        Assert.False(prefix.PrefixProjection);
    }

    [Fact]
    public void New_configs_carry_their_peft_type()
    {
        Assert.Equal("LORA", new LoraConfig().PeftType);
        Assert.Equal("IA3", new Ia3Config().PeftType);
        Assert.Equal("PROMPT_TUNING", new PromptTuningConfig().PeftType);
        Assert.Equal("P_TUNING", new PromptEncoderConfig().PeftType);
        Assert.Equal("PREFIX_TUNING", new PrefixTuningConfig().PeftType);
        Assert.Equal(["LORA", "IA3", "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING"], AdapterConfig.KnownPeftTypes.Take(5));
        Assert.Equal("LOHA", new LoHaConfig().PeftType);
        Assert.Equal("LOKR", new LoKrConfig().PeftType);
        Assert.Contains("LOHA", AdapterConfig.KnownPeftTypes);
        Assert.Contains("LOKR", AdapterConfig.KnownPeftTypes);
    }

    [Fact]
    public void Unknown_and_newer_keys_are_kept_and_written_back()
    {
        var json = """
            {"peft_type": "LORA", "r": 16, "use_rslora": true, "use_dora": false, "layer_replication": null,
             "custom": {"b": [1, 2.5, "x\u00e9"], "a": 1e-05}, "lora_alpha": 32.5}
            """;
        var lora = (LoraConfig)AdapterConfigJson.Parse(json);
        Assert.True(lora.UseRslora);
        Assert.Equal(32.5, lora.LoraAlpha);
        Assert.Equal(["custom", "layer_replication", "use_dora"], lora.Extra!.Keys.Order());
        var saved = lora.ToJson();
        Assert.Contains("\"use_rslora\": true", saved);
        Assert.Contains("\"use_dora\": false", saved);
        Assert.Contains("\"layer_replication\": null", saved);
        // Nested objects are sorted too, non-ASCII escaped, floats in Python's spelling.
        Assert.Contains("\"custom\": {\n    \"a\": 1e-05,\n    \"b\": [\n      1,\n      2.5,\n      \"x\\u00e9\"\n    ]\n  }", saved);
        Assert.Equal(saved, AdapterConfigJson.Parse(saved).ToJson());
    }

    [Fact]
    public void Scalar_or_list_keys_keep_their_form()
    {
        var regex = (LoraConfig)AdapterConfigJson.Parse("""{"peft_type": "LORA", "target_modules": ".*\\.(q|v)_proj"}""");
        Assert.True(regex.TargetModules!.IsPattern);
        Assert.Equal(@".*\.(q|v)_proj", regex.TargetModules.Pattern);
        Assert.Contains("\"target_modules\": \".*\\\\.(q|v)_proj\"", regex.ToJson());

        var single = (LoraConfig)AdapterConfigJson.Parse("""{"peft_type": "LORA", "target_modules": ["c_attn"], "layers_to_transform": 1, "layers_pattern": "h"}""");
        Assert.True(single.LayersToTransform!.IsSingle);
        Assert.Equal([1], single.LayersToTransform.Values);
        Assert.Contains("\"layers_to_transform\": 1,", single.ToJson());
        Assert.Contains("\"layers_pattern\": \"h\",", single.ToJson());

        var list = (LoraConfig)AdapterConfigJson.Parse("""{"peft_type": "LORA", "target_modules": ["c_attn"], "layers_to_transform": [0, 1], "layers_pattern": ["h"]}""");
        Assert.False(list.LayersToTransform!.IsSingle);
        Assert.Contains("\"layers_to_transform\": [\n    0,\n    1\n  ]", list.ToJson());
        Assert.Contains("\"layers_pattern\": [\n    \"h\"\n  ]", list.ToJson());
    }

    [Theory]
    [InlineData("true")]
    [InlineData("false")]
    [InlineData("\"gaussian\"")]
    public void Init_lora_weights_round_trips(string value)
    {
        var lora = (LoraConfig)AdapterConfigJson.Parse($$"""{"peft_type": "LORA", "init_lora_weights": {{value}}}""");
        Assert.Equal(value, lora.InitLoraWeights.ToString());
        Assert.Contains($"\"init_lora_weights\": {value},", lora.ToJson());
    }

    [Fact]
    public void Load_accepts_the_file_or_its_folder()
    {
        var dir = PeftFixtures.AdapterDir("bloom/ia3");
        Assert.Equal(AdapterConfig.Load(dir).ToJson(), AdapterConfig.Load(Path.Combine(dir, AdapterConfig.FileName)).ToJson());
    }

    private static IEnumerable<string> Keys(string json) =>
        JsonDocument.Parse(json).RootElement.EnumerateObject().Select(p => p.Name).ToList();
}
