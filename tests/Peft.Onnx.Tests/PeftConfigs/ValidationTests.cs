using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.PeftConfigs;

/// <summary>Bad adapter configs fail with one line that names the file and the key.</summary>
public class ValidationTests
{
    private const string File = "bad/adapter_config.json";

    private static PeftOnnxException Fails(string json)
    {
        var ex = Assert.Throws<PeftOnnxException>(() => AdapterConfigJson.Parse(json, File));
        Assert.DoesNotContain('\n', ex.Message);
        Assert.StartsWith(File + ": ", ex.Message);
        return ex;
    }

    [Fact]
    public void Unknown_peft_type_lists_the_known_ones()
    {
        var ex = Fails("""{"peft_type": "XLORA", "r": 8}""");
        Assert.Contains("peft_type 'XLORA'", ex.Message);
        Assert.Contains("LORA, IA3, PROMPT_TUNING, P_TUNING, PREFIX_TUNING", ex.Message);
    }

    [Fact]
    public void Missing_peft_type_is_named()
    {
        var ex = Fails("""{"r": 8}""");
        Assert.Contains("'peft_type'", ex.Message);
        Assert.Contains("LORA, IA3, PROMPT_TUNING, P_TUNING, PREFIX_TUNING", ex.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-4)]
    public void Lora_rank_must_be_positive(int r)
    {
        var ex = Fails($$"""{"peft_type": "LORA", "r": {{r}}}""");
        Assert.Contains($"r = {r}", ex.Message);
        Assert.Contains("positive integer", ex.Message);
    }

    [Fact]
    public void Rank_pattern_values_must_be_positive()
    {
        var ex = Fails("""{"peft_type": "LORA", "rank_pattern": {"dense": 0}}""");
        Assert.Contains("rank_pattern[\"dense\"] = 0", ex.Message);
    }

    [Theory]
    [InlineData("PROMPT_TUNING", 0)]
    [InlineData("P_TUNING", -1)]
    [InlineData("PREFIX_TUNING", 0)]
    public void Num_virtual_tokens_must_be_positive(string peftType, int tokens)
    {
        var ex = Fails($$"""{"peft_type": "{{peftType}}", "num_virtual_tokens": {{tokens}}}""");
        Assert.Contains($"num_virtual_tokens = {tokens}", ex.Message);
    }

    [Theory]
    [InlineData("PROMPT_TUNING")]
    [InlineData("P_TUNING")]
    [InlineData("PREFIX_TUNING")]
    public void Num_virtual_tokens_is_required(string peftType)
    {
        var ex = Fails($$"""{"peft_type": "{{peftType}}", "num_virtual_tokens": null}""");
        Assert.Contains("'num_virtual_tokens'", ex.Message);
    }

    [Theory]
    [InlineData("-0.1")]
    [InlineData("1.0")]
    [InlineData("1.5")]
    public void Lora_dropout_must_be_in_0_1(string dropout)
    {
        var ex = Fails($$"""{"peft_type": "LORA", "lora_dropout": {{dropout}}}""");
        Assert.Contains($"lora_dropout = {dropout}", ex.Message);
        Assert.Contains("[0, 1)", ex.Message);
    }

    [Fact]
    public void Bias_must_be_none_all_or_lora_only()
    {
        var ex = Fails("""{"peft_type": "LORA", "bias": "some"}""");
        Assert.Contains("bias = \"some\"", ex.Message);
        Assert.Contains("\"none\", \"all\" or \"lora_only\"", ex.Message);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("\"\"")]
    public void Text_init_needs_the_text(string text)
    {
        var ex = Fails($$"""{"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 8, "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": {{text}}}""");
        Assert.Contains("prompt_tuning_init_text", ex.Message);
    }

    [Fact]
    public void Prompt_tuning_init_must_be_random_or_text()
    {
        var ex = Fails("""{"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 8, "prompt_tuning_init": "random"}""");
        Assert.Contains("prompt_tuning_init = \"random\"", ex.Message);
    }

    [Fact]
    public void Encoder_type_must_be_mlp_or_lstm()
    {
        var ex = Fails("""{"peft_type": "P_TUNING", "num_virtual_tokens": 8, "encoder_reparameterization_type": "GRU"}""");
        Assert.Contains("encoder_reparameterization_type = \"GRU\"", ex.Message);
    }

    [Theory]
    [InlineData("""{"peft_type": "LORA", "r": 8""", "invalid JSON")]
    [InlineData("""{"peft_type": "LORA", "r": "eight"}""", "invalid JSON at 'r'")]
    [InlineData("""{"peft_type": "LORA", "target_modules": 3}""", "invalid JSON at 'target_modules'")]
    [InlineData("""{"peft_type": "LORA", "layers_to_transform": "first"}""", "invalid JSON at 'layers_to_transform'")]
    [InlineData("""[1, 2]""", "expected a JSON object")]
    public void Invalid_json_is_reported_with_the_key(string json, string expected)
    {
        var ex = Fails(json);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Layer_filter_cannot_be_combined_with_a_regex_target()
    {
        var ex = Fails("""{"peft_type": "LORA", "target_modules": ".*dense", "layers_to_transform": [0]}""");
        Assert.Contains("layers_to_transform", ex.Message);
        ex = Fails("""{"peft_type": "LORA", "target_modules": ".*dense", "layers_pattern": "h"}""");
        Assert.Contains("layers_pattern", ex.Message);
    }

    [Fact]
    public void Broken_regex_is_named()
    {
        var ex = Fails("""{"peft_type": "LORA", "target_modules": "(dense"}""");
        Assert.Contains("target_modules", ex.Message);
        Assert.Contains("(dense", ex.Message);
    }

    [Fact]
    public void Ia3_feedforward_must_be_a_subset_of_the_targets()
    {
        var ex = Fails("""{"peft_type": "IA3", "target_modules": ["query_key_value"], "feedforward_modules": ["dense_4h_to_h"]}""");
        Assert.Contains("feedforward_modules", ex.Message);
        Assert.Contains("dense_4h_to_h", ex.Message);
    }

    [Fact]
    public void Loftq_init_needs_a_loftq_config()
    {
        var ex = Fails("""{"peft_type": "LORA", "init_lora_weights": "loftq"}""");
        Assert.Contains("loftq_config", ex.Message);
        ex = Fails("""{"peft_type": "LORA", "init_lora_weights": "uniform"}""");
        Assert.Contains("init_lora_weights = \"uniform\"", ex.Message);
    }

    [Fact]
    public void Missing_file_is_named()
    {
        var dir = Paths.TempDir();
        try
        {
            var ex = Assert.Throws<PeftOnnxException>(() => AdapterConfig.Load(dir));
            Assert.Contains(Path.Combine(dir, AdapterConfig.FileName), ex.Message);
            Assert.Contains("not found", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Bad_file_on_disk_names_its_path()
    {
        var dir = Paths.TempDir();
        try
        {
            var path = Path.Combine(dir, AdapterConfig.FileName);
            System.IO.File.WriteAllText(path, """{"peft_type": "LORA", "r": 0}""");
            var ex = Assert.Throws<PeftOnnxException>(() => AdapterConfig.Load(dir));
            Assert.StartsWith(path + ": r = 0", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
