using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.PeftConfigs;

/// <summary>print_trainable_parameters from configs alone, against real PEFT 0.7.1 and the PEFT guides.</summary>
public class ParameterCountTests
{
    public static TheoryData<string> ReferenceCases => new(PeftFixtures.ReferenceCases);
    public static TheoryData<string> DocCases => new(PeftFixtures.DocCases);

    [Theory, MemberData(nameof(ReferenceCases))]
    public void Reference_case_counts_match_peft(string name)
    {
        var arch = Architecture.For(ModelConfig.Load(PeftFixtures.BaseDir(name)));
        var adapter = AdapterConfig.Load(PeftFixtures.AdapterDir(name));
        var expected = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Paths.Reference, name, "meta.json"))).RootElement.GetProperty("counts");
        var count = ParameterCount.Count(arch, adapter);
        Assert.Equal((expected.GetProperty("trainable").GetInt64(), expected.GetProperty("all").GetInt64()), (count.Trainable, count.All));
    }

    [Theory, MemberData(nameof(DocCases))]
    public void Doc_case_counts_and_line_match_peft(string name)
    {
        var dir = PeftFixtures.DocDir(name);
        var arch = Architecture.For(ModelConfig.Load(PeftFixtures.DocBaseDir(name)));
        var adapter = AdapterConfig.Load(dir);
        var expected = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "expected_counts.json"))).RootElement;
        var line = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Paths.Reference, "param_counts.json"))).RootElement
            .EnumerateArray().Single(c => c.GetProperty("case").GetString() == expected.GetProperty("doc_line_case").GetString())
            .GetProperty("line").GetString();
        var count = ParameterCount.Count(arch, adapter);
        Assert.Equal((expected.GetProperty("trainable").GetInt64(), expected.GetProperty("all").GetInt64()), (count.Trainable, count.All));
        Assert.Equal(line, count.Line);
    }

    [Fact]
    public void Line_is_formatted_as_peft_prints_it()
    {
        Assert.Equal("trainable params: 300,288 || all params: 559,514,880 || trainable%: 0.05366935013417338",
            new ParameterCount(300288, 559514880).Line);
        Assert.Equal("trainable params: 0 || all params: 1,000 || trainable%: 0.0", new ParameterCount(0, 1000).Line);
        Assert.Equal("trainable params: 1 || all params: 10,000,000 || trainable%: 1e-05", new ParameterCount(1, 10_000_000).Line);
    }

    [Theory]
    [InlineData(0.0, "0.0")]
    [InlineData(-0.0, "-0.0")]
    [InlineData(1.0, "1.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(0.30000000000000004, "0.30000000000000004")]
    [InlineData(1e-05, "1e-05")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00030000000000000003, "0.00030000000000000003")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(1234567890123456.0, "1234567890123456.0")]
    [InlineData(12345678901234567.0, "1.2345678901234568e+16")]
    [InlineData(5e-324, "5e-324")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(100.0 / 3, "33.333333333333336")]
    [InlineData(2.5e-7, "2.5e-07")]
    [InlineData(123.456, "123.456")]
    [InlineData(-1.5e-10, "-1.5e-10")]
    [InlineData(1e22, "1e+22")]
    [InlineData(9007199254740993.0, "9007199254740992.0")]
    public void Python_float_repr(double value, string expected) => Assert.Equal(expected, PythonFloat.Repr(value));

    [Fact]
    public void Model_defaults_fill_only_the_null_sizes()
    {
        var bloomz = ModelConfig.Load(PeftFixtures.DocBaseDir("bloomz-560m/p_tuning"));
        var pt = (PromptEncoderConfig)AdapterConfig.Load(PeftFixtures.DocDir("bloomz-560m/p_tuning"));
        Assert.Null(pt.TokenDim);
        var filled = pt.WithModelDefaults(bloomz);
        Assert.Equal((1024, 24, 16, 1, 128), (filled.TokenDim, filled.NumLayers, filled.NumAttentionHeads, filled.NumTransformerSubmodules, filled.EncoderHiddenSize));
        Assert.Equal(20, filled.TotalVirtualTokens);

        var t5 = ModelConfig.Load(PeftFixtures.DocBaseDir("t5-large/prefix"));
        var prefix = ((PrefixTuningConfig)AdapterConfig.Load(PeftFixtures.DocDir("t5-large/prefix"))).WithModelDefaults(t5);
        // PEFT reads T5's num_layers, d_model and num_heads; an encoder-decoder gets two prompts.
        Assert.Equal((1024, 24, 16, 2, 1024), (prefix.TokenDim, prefix.NumLayers, prefix.NumAttentionHeads, prefix.NumTransformerSubmodules, prefix.EncoderHiddenSize));

        // Sizes already in the file (as PEFT saves them after training) are kept.
        var tiny = (PromptTuningConfig)AdapterConfig.Load(PeftFixtures.AdapterDir("bloom/prompt_tuning_random"));
        var kept = tiny.WithModelDefaults(bloomz);
        Assert.Equal((64, 2, 4, 1), (kept.TokenDim, kept.NumLayers, kept.NumAttentionHeads, kept.NumTransformerSubmodules));
    }

    [Fact]
    public void Lora_bias_all_trains_every_bias_and_lora_only_none_in_peft_071()
    {
        var bloom = PeftFixtures.TinyBloom();
        long lora = 2 * 4 * (64 + 192);
        long biases = bloom.Parameters.Where(p => p.Name.Contains("bias")).Sum(p => p.ElementCount);
        Assert.True(biases > 0);
        var all = ParameterCount.Count(bloom, AdapterConfigJson.Parse("""{"peft_type": "LORA", "r": 4, "bias": "all"}"""));
        Assert.Equal((lora + biases, bloom.CountParameters() + lora), (all.Trainable, all.All));
        var loraOnly = ParameterCount.Count(bloom, AdapterConfigJson.Parse("""{"peft_type": "LORA", "r": 4, "bias": "lora_only"}"""));
        Assert.Equal((lora, bloom.CountParameters() + lora), (loraOnly.Trainable, loraOnly.All));
    }

    [Fact]
    public void Modules_to_save_add_a_trainable_copy()
    {
        var bloom = PeftFixtures.TinyBloom();
        long lora = 2 * 4 * (64 + 192);
        // BLOOM's head is tied to the word embeddings; the saved copy gets its own 1000 x 64 weight.
        var count = ParameterCount.Count(bloom, AdapterConfigJson.Parse("""{"peft_type": "LORA", "r": 4, "modules_to_save": ["lm_head"]}"""));
        Assert.Equal((lora + 64_000, bloom.CountParameters() + lora + 64_000), (count.Trainable, count.All));
        var ln = ParameterCount.Count(bloom, AdapterConfigJson.Parse("""{"peft_type": "IA3", "modules_to_save": ["ln_f"]}"""));
        Assert.Equal(2 * (192 + 256) + 128, ln.Trainable);
    }

    [Fact]
    public void Lora_rank_pattern_changes_the_count()
    {
        var bloom = PeftFixtures.TinyBloom();
        var count = ParameterCount.Count(bloom, AdapterConfigJson.Parse("""{"peft_type": "LORA", "r": 4, "rank_pattern": {"h.1.self_attention.query_key_value": 8}}"""));
        Assert.Equal(4 * 256 + 8 * 256, count.Trainable);
    }
}
