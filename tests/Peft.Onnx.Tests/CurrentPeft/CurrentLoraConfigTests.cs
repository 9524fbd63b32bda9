using System.Text;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Tests.Finetune;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Finetune;
using Xunit;

namespace Peft.Onnx.Tests.CurrentPeft;

/// <summary>The LoRA keys of PEFT 0.8 to 0.20: read 1:1, written back unchanged, applied or refused by name.</summary>
public class CurrentLoraConfigTests
{
    public static TheoryData<string, string> Cases => CurrentLoraCases.All;

    [Theory, MemberData(nameof(Cases))]
    public void Config_is_saved_back_as_peft_wrote_it(string arch, string method)
    {
        var path = Path.Combine(CurrentLoraCases.AdapterDir(arch, method), "adapter_config.json");
        var config = Assert.IsType<LoraConfig>(AdapterConfig.Load(path));
        Assert.Equal(File.ReadAllText(path), config.ToJson());
        Assert.Equal(method.StartsWith("lora_dora", StringComparison.Ordinal), config.UsesDora);
        Assert.Equal(method == "lora_bias", config.HasLoraBias);
        Assert.Equal(method == "lora_exclude", config.ExcludedModules is not null);
    }

    /// <summary>"all-linear" resolves to the modules PEFT resolved it to (saved in the lora_dora_all configs), output head excluded.</summary>
    [Theory]
    [InlineData("bloom"), InlineData("gpt2"), InlineData("llama"), InlineData("opt"), InlineData("t5"), InlineData("mt5")]
    public void All_linear_adapts_what_peft_resolved_it_to(string arch)
    {
        var architecture = Architecture.For(ModelConfig.Load(CurrentLoraCases.BaseDir(arch)));
        var saved = (LoraConfig)AdapterConfig.Load(CurrentLoraCases.AdapterDir(arch, "lora_dora_all"));
        var shorthand = saved with { TargetModules = TargetModules.FromPattern("all-linear") };
        Assert.Equal(saved.FindTargets(architecture).Select(t => t.Path), shorthand.FindTargets(architecture).Select(t => t.Path));
        Assert.DoesNotContain(shorthand.FindTargets(architecture), t => t.Path == "lm_head");
        var prepared = (LoraConfig)shorthand.PreparedFor(architecture);
        Assert.Equal(shorthand.FindTargets(architecture).Select(t => t.Path), prepared.TargetModules!.Names!);
    }

    [Fact]
    public void Exclude_modules_as_a_regex_is_a_full_match()
    {
        var architecture = Architecture.For(ModelConfig.Load(CurrentLoraCases.BaseDir("llama")));
        var config = new LoraConfig { TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]), ExcludedModules = TargetModules.FromPattern(@".*layers\.0\..*") };
        Assert.Equal(["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"], config.FindTargets(architecture).Select(t => t.Path));
        // a list entry matches the name or a dotted suffix, never a bare suffix
        var list = config with { ExcludedModules = TargetModules.FromNames(["_proj", "layers.1.self_attn.q_proj"]) };
        Assert.Equal(["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"], list.FindTargets(architecture).Select(t => t.Path));
        var all = config with { ExcludedModules = TargetModules.FromNames(["q_proj", "v_proj"]) };
        var error = Assert.Throws<PeftOnnxException>(() => all.FindTargets(architecture));
        Assert.Contains("exclude_modules", error.Message);
    }

    [Theory]
    [InlineData("layer_replication", "[[0, 2]]")]
    [InlineData("trainable_token_indices", "[1, 2]")]
    [InlineData("target_parameters", "[\"mlp.experts.weight\"]")]
    [InlineData("use_qalora", "true")]
    [InlineData("alora_invocation_tokens", "[5]")]
    [InlineData("arrow_config", "{\"top_k\": 2}")]
    [InlineData("use_bdlora", "true")]
    [InlineData("monteclora_config", "{\"n\": 2}")]
    [InlineData("velora_config", "{\"rank\": 2}")]
    [InlineData("lora_ga_config", "{\"bsz\": 2}")]
    [InlineData("ensure_weight_tying", "true")]
    public void Keys_that_change_the_computation_and_are_not_implemented_are_refused_by_name(string key, string value)
    {
        var error = Assert.Throws<PeftOnnxException>(() => Parse(key, value));
        // the value as written (the file's raw JSON; this test's file is compact)
        Assert.Contains($"{key} = {value.Replace(" ", "")}", error.Message);
        Assert.Contains("not supported", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Theory]
    [InlineData("use_dora", "\"yes\"", "expected true or false")]
    [InlineData("lora_bias", "1", "expected true or false")]
    [InlineData("exclude_modules", "3", "expected null, a regular expression")]
    [InlineData("exclude_modules", "\"(\"", "exclude_modules")]
    [InlineData("init_lora_weights", "\"pissa\"", "init_lora_weights")]
    public void Bad_values_of_the_implemented_keys_are_refused_by_name(string key, string value, string expected)
    {
        var error = Assert.Throws<PeftOnnxException>(() => Parse(key, value));
        Assert.Contains(key, error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Dora_with_lora_bias_is_refused_as_peft_refuses_it()
    {
        var error = Assert.Throws<PeftOnnxException>(() => Parse("lora_bias", "true", "use_dora", "true"));
        Assert.Contains("lora_bias = true", error.Message);
        Assert.Contains("use_dora", error.Message);
    }

    [Fact]
    public void Keys_without_effect_on_these_models_are_kept()
    {
        var config = Parse("runtime_config", "{\"ephemeral_gpu_offload\": false}", "megatron_config", "{\"tensor_model_parallel_size\": 1}");
        Assert.Contains("\"ephemeral_gpu_offload\": false", config.ToJson());
        Assert.Contains("\"tensor_model_parallel_size\": 1", config.ToJson());
    }

    /// <summary>A DoRA file read with use_dora false (or a config that lost the key) is refused naming the key, not just the tensor.</summary>
    [Fact]
    public void A_magnitude_without_use_dora_names_the_key()
    {
        var dir = Paths.TempDir("peft-onnx-dora-nokey");
        try
        {
            var source = CurrentLoraCases.AdapterDir("bloom", "lora_dora");
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "adapter_config.json")))!.AsObject();
            json["use_dora"] = false;
            File.WriteAllText(Path.Combine(dir, "adapter_config.json"), json.ToJsonString());
            File.Copy(Path.Combine(source, "adapter_model.safetensors"), Path.Combine(dir, "adapter_model.safetensors"));
            var architecture = Architecture.For(ModelConfig.Load(CurrentLoraCases.BaseDir("bloom")));
            var error = Assert.Throws<PeftOnnxException>(() => AdapterFit.Check(AdapterConfig.Load(dir), architecture, dir));
            Assert.Contains("lora_magnitude_vector", error.Message);
            Assert.Contains("use_dora = false", error.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Train_method_options_build_dora_lora_bias_exclude_and_all_linear_configs()
    {
        var model = Peft.Onnx.Tests.Finetune.FinetuneData.Bloom;
        var tokenizer = HfTokenizer.FromFolder(model);
        var dora = Assert.IsType<LoraConfig>(FinetuneSetup.ConfigFor("lora", new MethodOptions { UseDora = true, TargetModules = ["all-linear"], ExcludeModules = ["dense"] }, TaskKind.CausalLm, model, tokenizer));
        Assert.True(dora.UsesDora);
        Assert.Equal("all-linear", dora.TargetModules!.Pattern);
        Assert.Equal(["dense"], dora.ExcludedModules!.Names!);
        var biased = Assert.IsType<LoraConfig>(FinetuneSetup.ConfigFor("lora", new MethodOptions { LoraBias = true }, TaskKind.CausalLm, model, tokenizer));
        Assert.True(biased.HasLoraBias);
        Assert.Contains("\"lora_bias\": true", biased.ToJson());
        var plain = FinetuneSetup.ConfigFor("lora", new MethodOptions(), TaskKind.CausalLm, model, tokenizer).ToJson();
        Assert.DoesNotContain("use_dora", plain);
        Assert.DoesNotContain("lora_bias", plain);
        Assert.DoesNotContain("exclude_modules", plain);
        var error = Assert.Throws<PeftOnnxException>(() => FinetuneSetup.ConfigFor("ia3", new MethodOptions { UseDora = true }, TaskKind.CausalLm, model, tokenizer));
        Assert.Contains("--use-dora", error.Message);
    }

    private static LoraConfig Parse(params string[] keyValues)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(CurrentLoraCases.AdapterDir("opt", "lora_exclude"), "adapter_config.json")))!.AsObject();
        for (int i = 0; i < keyValues.Length; i += 2) json[keyValues[i]] = JsonNode.Parse(keyValues[i + 1]);
        return (LoraConfig)AdapterConfig.Parse(Encoding.UTF8.GetBytes(json.ToJsonString()), "adapter_config.json");
    }
}
