using System.Text;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Refusals;

/// <summary>
/// config.json values a model cannot be built or run with are refused when the config loads, naming the file, the
/// key, the value and what was expected; values transformers accepts still load.
/// </summary>
public class ConfigRangeTests
{
    /// <summary>The fixture's config.json of <paramref name="arch"/> with <paramref name="key"/> set to the JSON <paramref name="value"/>.</summary>
    private static byte[] With(string arch, string key, string value)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.Case(arch, "base_model"), ModelConfig.FileName)))!.AsObject();
        json[key] = JsonNode.Parse(value);
        return Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    [Theory]
    [InlineData("gpt2", "n_head", "0", "n_head = 0", "a positive integer")]
    [InlineData("gpt2", "n_head", "3", "n_embd = 64", "a multiple of n_head = 3")]
    [InlineData("gpt2", "attn_pdrop", "1.5", "attn_pdrop = 1.5", "a probability in [0, 1]")]
    [InlineData("gpt2", "resid_pdrop", "-0.1", "resid_pdrop = -0.1", "a probability in [0, 1]")]
    [InlineData("gpt2", "layer_norm_epsilon", "-1", "layer_norm_epsilon = -1", "non-negative")]
    [InlineData("gpt2", "layer_norm_epsilon", "\"NaN\"", "layer_norm_epsilon = NaN", "non-negative")]
    [InlineData("gpt2", "activation_function", "\"gelu_neww\"", "activation_function = 'gelu_neww'", "gelu_new")]
    [InlineData("gpt2", "n_positions", "0", "n_positions = 0", "a positive integer")]
    [InlineData("opt", "dropout", "2", "dropout = 2", "a probability in [0, 1]")]
    [InlineData("opt", "layerdrop", "-1", "layerdrop = -1", "a probability in [0, 1]")]
    [InlineData("opt", "activation_function", "\"swiglu\"", "activation_function = 'swiglu'", "one of gelu")]
    [InlineData("opt", "max_position_embeddings", "-5", "max_position_embeddings = -5", "a positive integer")]
    [InlineData("bloom", "layer_norm_epsilon", "\"Infinity\"", "layer_norm_epsilon = Infinity", "non-negative")]
    [InlineData("bloom", "hidden_dropout", "1.01", "hidden_dropout = 1.01", "a probability in [0, 1]")]
    [InlineData("llama", "num_key_value_heads", "3", "num_key_value_heads = 3", "a positive divisor of num_attention_heads = 4")]
    [InlineData("llama", "rms_norm_eps", "0", "rms_norm_eps = 0", "a small positive number")]
    [InlineData("llama", "hidden_act", "\"swiglu\"", "hidden_act = 'swiglu'", "one of gelu")]
    [InlineData("llama", "max_position_embeddings", "0", "max_position_embeddings = 0", "a positive integer")]
    [InlineData("llama", "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", "rope_scaling = {", "RoPE scaling is not supported here")]
    [InlineData("llama", "rope_scaling", "{\"type\": \"yarn\", \"factor\": 0.5}", "rope_scaling = {", "\"factor\": a number > 1")]
    [InlineData("t5", "relative_attention_max_distance", "16", "relative_attention_max_distance = 16", "above relative_attention_num_buckets / 2 = 16")]
    [InlineData("t5", "feed_forward_proj", "\"gated-swiglu\"", "feed_forward_proj = gated-swiglu", "'gated-ACT' with ACT one of")]
    [InlineData("t5", "dropout_rate", "1.2", "dropout_rate = 1.2", "a probability in [0, 1]")]
    [InlineData("t5", "pad_token_id", "1000", "pad_token_id = 1000", "a token id in [0, 1000)")]
    [InlineData("t5", "decoder_start_token_id", "-1", "decoder_start_token_id = -1", "a token id in [0, 1000)")]
    [InlineData("mt5", "layer_norm_epsilon", "-1e-06", "layer_norm_epsilon = -1E-06", "non-negative")]
    public void Out_of_range_values_are_refused_naming_file_and_key(string arch, string key, string value, string shown, string expected)
    {
        var path = $"/models/{arch}/config.json";
        var ex = Assert.Throws<PeftOnnxException>(() => ModelConfig.Parse(With(arch, key, value), path));
        Assert.StartsWith($"{path}: {shown}", ex.Message);
        Assert.Contains("is out of range (expected ", ex.Message);
        Assert.Contains(expected, ex.Message[ex.Message.IndexOf("(expected ", StringComparison.Ordinal)..]);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Theory]
    [InlineData("gpt2", "attn_pdrop", "1.0")]                       // torch's Dropout takes p = 1
    [InlineData("gpt2", "layer_norm_epsilon", "0")]
    [InlineData("gpt2", "activation_function", "\"gelu_pytorch_tanh\"")]
    [InlineData("opt", "activation_function", "\"gelu\"")]
    [InlineData("llama", "hidden_act", "\"gelu_new\"")]
    [InlineData("llama", "pad_token_id", "-1")]                       // the original LLaMA configs say -1; nothing looks it up
    [InlineData("gpt2", "eos_token_id", "50256")]                     // beyond this vocabulary, yet only a stop id
    [InlineData("t5", "feed_forward_proj", "\"gated-silu\"")]         // any ACT2FN name, as T5DenseGatedActDense takes it
    [InlineData("t5", "feed_forward_proj", "\"gelu_pytorch_tanh\"")]
    [InlineData("t5", "relative_attention_max_distance", "17")]
    [InlineData("llama", "rope_scaling", "null")]
    public void Values_transformers_accepts_still_load(string arch, string key, string value)
    {
        var config = ModelConfig.Parse(With(arch, key, value), "config.json");
        Assert.NotNull(config);
    }

    [Theory]
    [InlineData("{\"repetition_penalty\": 0}", "repetition_penalty = 0 is out of range (expected a positive number)")]
    [InlineData("{\"repetition_penalty\": \"NaN\"}", "repetition_penalty = NaN is out of range (expected a positive number)")]
    [InlineData("{\"max_new_tokens\": -1}", "max_new_tokens = -1 is out of range (expected >= 0)")]
    [InlineData("{\"top_p\": 1.5}", "top_p = 1.5 is out of range (expected 0 < top_p <= 1)")]
    public void Generation_config_values_out_of_range_are_refused(string json, string expected)
    {
        var dir = Paths.TempDir();
        try
        {
            var path = Path.Combine(dir, GenerationConfig.FileName);
            File.WriteAllText(path, json);
            var ex = Assert.Throws<PeftOnnxException>(() => GenerationConfig.TryLoad(dir));
            Assert.Equal($"{path}: {expected}", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Every_bundled_and_documented_config_loads()
    {
        var files = Directory.GetDirectories(Paths.Models).Select(d => Path.Combine(d, ModelConfig.FileName))
            .Concat(Directory.GetDirectories(Paths.DocConfigs).Select(d => Path.Combine(d, ModelConfig.FileName)))
            .Concat(Paths.Archs.Select(a => Path.Combine(Paths.Case(a, "base_model"), ModelConfig.FileName)))
            .Where(File.Exists).ToList();
        Assert.True(files.Count >= 15, $"only {files.Count} configs found");
        foreach (var file in files) Assert.NotNull(ModelConfig.Load(file));
    }
}
