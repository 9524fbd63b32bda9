using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Xunit;

namespace Peft.Onnx.Tests.Models;

/// <summary>GPT-2 beyond the fixture's single batch: the KV cache, left padding with explicit positions, inputs_embeds, a foreign past.</summary>
public class Gpt2ModelTests() : PositionIdsCausalLmTests("gpt2", "transformer.h.0.attn.c_attn.weight")
{
    [Fact]
    public void Old_checkpoint_attention_buffers_are_ignored_on_load()
    {
        var arch = new Gpt2Architecture(new Gpt2Config { NEmbd = 8, NHead = 2, NLayer = 2, VocabSize = 10, NPositions = 16 });
        Assert.True(arch.IsIgnoredOnLoad("transformer.h.0.attn.bias"));
        Assert.True(arch.IsIgnoredOnLoad("transformer.h.11.attn.masked_bias"));
        Assert.True(arch.IsIgnoredOnLoad("h.1.attn.bias"));
        Assert.False(arch.IsIgnoredOnLoad("transformer.h.0.attn.c_attn.bias"));
        Assert.False(arch.IsIgnoredOnLoad("transformer.h.0.mlp.c_proj.bias"));
    }

    [Fact]
    public void Architecture_lists_conv1d_linears_in_module_order_and_counts_like_num_parameters()
    {
        var config = new Gpt2Config { NEmbd = 8, NHead = 2, NLayer = 2, VocabSize = 10, NPositions = 16, NInner = 20 };
        var arch = new Gpt2Architecture(config);
        Assert.Equal(
            ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj",
             "transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj", "lm_head"],
            arch.Linears.Select(l => l.Path));
        Assert.All(arch.Linears.SkipLast(1), l => Assert.True(l.IsConv1D));
        Assert.Equal([8L, 20], arch.Parameters.Single(p => p.Name == "transformer.h.0.mlp.c_fc.weight").Shape);
        // wte + wpe + layers (2 LayerNorms, c_attn, c_proj, c_fc, c_proj) + ln_f; the tied head counts once.
        long perLayer = 2 * 16 + (8 * 24 + 24) + (8 * 8 + 8) + (8 * 20 + 20) + (20 * 8 + 8);
        Assert.Equal(10 * 8 + 16 * 8 + 2 * perLayer + 16, arch.CountParameters());
        var untied = new Gpt2Architecture(config with { TieWordEmbeddings = false });
        Assert.Equal(arch.CountParameters() + 10 * 8, untied.CountParameters());
    }
}
