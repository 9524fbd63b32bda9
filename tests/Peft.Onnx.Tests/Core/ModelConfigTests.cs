using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Core;

public class ModelConfigTests
{
    [Theory]
    [InlineData("bloom", typeof(BloomConfig)), InlineData("gpt2", typeof(Gpt2Config)), InlineData("opt", typeof(OptConfig))]
    [InlineData("llama", typeof(LlamaConfig)), InlineData("t5", typeof(T5Config)), InlineData("mt5", typeof(MT5Config))]
    public void Dispatches_on_model_type(string arch, Type expected)
    {
        var config = ModelConfig.Load(Paths.Case(arch, "base_model"));
        Assert.IsType(expected, config);
        Assert.Equal(1000, config.Dimensions.VocabSize);
        Assert.Equal(64, config.Dimensions.HiddenSize);
    }

    [Fact]
    public void Missing_keys_take_transformers_defaults()
    {
        var mt5 = (MT5Config)ModelConfig.Parse("{\"model_type\":\"mt5\"}"u8.ToArray(), "config.json");
        Assert.Equal(250112, mt5.VocabSize);
        Assert.True(mt5.IsGatedAct);
        Assert.Equal("gelu_new", mt5.DenseActFn);
        Assert.False(mt5.TiesWordEmbeddings);
        var llama = (LlamaConfig)ModelConfig.Parse("{\"model_type\":\"llama\",\"num_attention_heads\":8}"u8.ToArray(), "config.json");
        Assert.Equal(8, llama.KeyValueHeads);
        Assert.False(llama.TiesWordEmbeddings);
        var t5 = (T5Config)ModelConfig.Parse("{\"model_type\":\"t5\",\"num_layers\":3}"u8.ToArray(), "config.json");
        Assert.Equal(3, t5.DecoderLayers);
        Assert.True(t5.TiesWordEmbeddings);
        var opt = (OptConfig)ModelConfig.Parse("{\"model_type\":\"opt\",\"hidden_size\":64,\"num_attention_heads\":4}"u8.ToArray(), "config.json");
        Assert.Equal(64, opt.EmbedDim);
    }

    [Fact]
    public void Eos_may_be_a_list()
    {
        var c = ModelConfig.Parse("{\"model_type\":\"llama\",\"eos_token_id\":[2,32000]}"u8.ToArray(), "config.json");
        Assert.Equal(new[] { 2, 32000 }, c.EosTokenId);
    }

    [Theory]
    [InlineData("{\"model_type\":\"bert\"}", "unknown model_type 'bert'")]
    [InlineData("{\"hidden_size\":4}", "missing required key 'model_type'")]
    [InlineData("{\"model_type\":\"bloom\",\"n_head\":0}", "n_head")]
    [InlineData("{\"model_type\":\"bloom\",\"hidden_size\":65,\"n_head\":4}", "hidden_size = 65")]
    [InlineData("{\"model_type\":\"gpt2\",\"n_embd\":\"wide\"}", "n_embd")]
    [InlineData("{\"model_type\":\"llama\",\"num_attention_heads\":4,\"num_key_value_heads\":3}", "num_key_value_heads")]
    [InlineData("{\"model_type\":\"t5\",\"feed_forward_proj\":\"gated-gelu-x\"}", "feed_forward_proj")]
    [InlineData("{\"model_type\":", "invalid JSON")]
    public void Bad_configs_name_file_and_key(string json, string expected)
    {
        var ex = Assert.Throws<PeftOnnxException>(() => ModelConfig.Parse(System.Text.Encoding.UTF8.GetBytes(json), "/m/config.json"));
        Assert.Contains("/m/config.json", ex.Message);
        Assert.Contains(expected, ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Generation_config_is_read_with_defaults()
    {
        var g = GenerationConfig.TryLoad(Paths.Case("bloom", "base_model"));
        Assert.NotNull(g);
        Assert.Equal(1, g!.NumBeams);
        Assert.Equal(1.0, g.Temperature);
    }
}
