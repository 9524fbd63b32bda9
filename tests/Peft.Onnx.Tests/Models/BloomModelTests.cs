using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Models;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Models;

/// <summary>BLOOM beyond the fixture's single batch: left padding, the KV cache, ALiBi slopes.</summary>
public class BloomModelTests() : MaskPositionedCausalLmTests("bloom")
{
    /// <summary>
    /// Random weights in layouts the fixture does not cover: a head count that is not a power of two (extra ALiBi
    /// slopes) and apply_residual_connection_post_layernorm.
    /// </summary>
    [Theory]
    [InlineData(6, false)]
    [InlineData(4, true)]
    public void Other_layouts_run_with_padding_and_cache(int heads, bool postLayerNormResidual)
    {
        var dir = Paths.TempDir("bloom-layout");
        try
        {
            var json = $$"""
                { "model_type": "bloom", "vocab_size": 100, "hidden_size": {{heads * 8}}, "n_layer": 2, "n_head": {{heads}},
                  "apply_residual_connection_post_layernorm": {{(postLayerNormResidual ? "true" : "false")}},
                  "pad_token_id": 3, "bos_token_id": 1, "eos_token_id": 2 }
                """;
            File.WriteAllText(Path.Combine(dir, "config.json"), json);
            var arch = Architecture.For(ModelConfig.Load(dir));
            CausalLmChecks.WriteRandomWeights(arch, Path.Combine(dir, "model.safetensors"));
            using var model = (CausalLm)ModelLoader.Load(dir);
            Assert.Equal(arch.CountParameters(), model.Parameters.CountElements());
            CausalLmChecks.LeftPaddingMatchesRowsAlone(model, CausalLmChecks.SmallVocabPrompts);
            CausalLmChecks.LeftPaddedCachedStepsMatchFullForward(model, heads, 8);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Alibi_slopes_follow_build_alibi_tensor_for_any_head_count()
    {
        using var scope = NewDisposeScope();
        // 6 heads: 4 geometric slopes 2^-2 .. 2^-8, then odd powers of the 8-head base 2^-1: 2^-1, 2^-3.
        var alibi = BloomForCausalLM.BuildAlibi(ones(1, 2, dtype: int64), 6);
        Assert.Equal([6L, 1, 2], alibi.shape);
        var slopes = alibi[.., 0, 1].data<float>().ToArray();
        Assert.Equal([0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.5f, 0.125f], slopes);
        // 8 heads: 2^-1 .. 2^-8.
        slopes = BloomForCausalLM.BuildAlibi(ones(1, 2, dtype: int64), 8)[.., 0, 1].data<float>().ToArray();
        Assert.Equal(Enumerable.Range(1, 8).Select(i => (float)Math.Pow(2, -i)), slopes);
        // Left padding: positions count attended tokens only, pads get 0.
        var padded = BloomForCausalLM.BuildAlibi(tensor(new long[] { 0, 0, 1, 1, 1 }, [1, 5]), 8);
        Assert.Equal([0f, 0f, 0f, 0.5f, 1f], padded[0, 0].data<float>().ToArray());
    }
}
