using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Models;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Models;

/// <summary>BLOOM beyond the fixture's single batch: left padding, the KV cache, ALiBi slopes.</summary>
public class BloomModelTests
{
    private static CausalLm LoadFixture() => (CausalLm)ModelLoader.Load(Paths.Case("bloom", "base_model"));

    [Fact]
    public void Left_padded_rows_match_each_row_alone()
    {
        using var model = LoadFixture();
        CausalLmChecks.LeftPaddingMatchesRowsAlone(model);
    }

    [Fact]
    public void Cached_steps_match_the_full_forward()
    {
        using var model = LoadFixture();
        CausalLmChecks.CachedStepsMatchFullForward(model, model.Config.Dimensions.NumHeads, model.Config.Dimensions.HeadDim);
    }

    [Fact]
    public void Batched_left_padded_greedy_matches_each_row_alone()
    {
        using var model = LoadFixture();
        CausalLmChecks.BatchedGreedyMatchesRowsAlone(model);
    }

    [Fact]
    public void Inputs_embeds_replace_the_token_lookup()
    {
        using var model = LoadFixture();
        CausalLmChecks.InputsEmbedsMatchInputIds(model);
    }

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
            CausalLmChecks.LeftPaddingMatchesRowsAlone(model);
            CausalLmChecks.CachedStepsMatchFullForward(model, heads, 8);
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

/// <summary>Checks shared by the BLOOM and OPT tests (any decoder-only model that derives positions from the mask).</summary>
internal static class CausalLmChecks
{
    private const float Tol = 1e-4f;

    private static readonly long[][] Prompts = [[5, 17, 31, 44, 9, 80, 12], [77, 3, 25], [64, 21, 8, 99, 42]];  // ids < 100: small random models too

    /// <summary>Prompts left-padded with pad 0 into ids and mask [B, maxLen].</summary>
    public static (Tensor Ids, Tensor Mask) LeftPad(long[][] rows)
    {
        int width = rows.Max(r => r.Length);
        var ids = new long[rows.Length * width];
        var mask = new long[rows.Length * width];
        for (int r = 0; r < rows.Length; r++)
            for (int j = 0; j < rows[r].Length; j++)
            {
                ids[r * width + width - rows[r].Length + j] = rows[r][j];
                mask[r * width + width - rows[r].Length + j] = 1;
            }
        return (tensor(ids, [rows.Length, width]), tensor(mask, [rows.Length, width]));
    }

    public static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= Tol, $"{what}: max |diff| {diff:g4} > {Tol}");
    }

    public static void LeftPaddingMatchesRowsAlone(CausalLm model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, mask) = LeftPad(Prompts);
        var batched = model.Forward(new CausalLmInput(ids, mask)).Logits;
        long width = ids.shape[1];
        for (int r = 0; r < Prompts.Length; r++)
        {
            var alone = model.Forward(new CausalLmInput(tensor(Prompts[r], [1, Prompts[r].Length]))).Logits[0];
            AssertClose(alone, batched[r, (int)(width - Prompts[r].Length)..], $"row {r}");
        }
    }

    /// <summary>Prompt with cache, then two tokens, then one: each step equals the full forward on the same positions.</summary>
    public static void CachedStepsMatchFullForward(CausalLm model, int heads, int headDim)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (prompt, promptMask) = LeftPad(Prompts);
        long batch = prompt.shape[0], t0 = prompt.shape[1];
        var more = tensor(new long[] { 11, 12, 13, 21, 22, 23, 31, 32, 33 }, [batch, 3]);
        var ids = cat([prompt, more], 1);
        var mask = cat([promptMask, ones_like(more)], 1);
        var full = model.Forward(new CausalLmInput(ids, mask)).Logits;

        var first = model.Forward(new CausalLmInput(prompt, promptMask, UseCache: true));
        var cache = first.PresentKeyValues!;
        Assert.Equal(model.Config.Dimensions.NumLayers, cache.Self.Count);
        Assert.Equal([batch, heads, t0, headDim], cache.Self[0].Key.shape);
        Assert.Equal([batch, heads, t0, headDim], cache.Self[0].Value.shape);

        var second = model.Forward(new CausalLmInput(more[.., ..2], mask[.., ..(int)(t0 + 2)], PastKeyValues: cache, UseCache: true));
        Assert.Equal(t0 + 2, second.PresentKeyValues!.Length);
        var third = model.Forward(new CausalLmInput(more[.., 2..], mask, PastKeyValues: second.PresentKeyValues, UseCache: true));
        Assert.Equal(t0 + 3, third.PresentKeyValues!.Length);

        for (int r = 0; r < batch; r++)
        {
            long pad = t0 - Prompts[r].Length;
            AssertClose(full[r, (int)pad..(int)t0], first.Logits[r, (int)pad..], $"prompt row {r}");
        }
        AssertClose(full[.., (int)t0..(int)(t0 + 2)], second.Logits, "two cached tokens");
        AssertClose(full[.., (int)(t0 + 2)..], third.Logits, "one cached token");
    }

    public static void BatchedGreedyMatchesRowsAlone(CausalLm model)
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = LeftPad(Prompts);
        var options = new GreedyOptions(6, [-1L], 0);
        var batched = GreedySearch.Generate(model, ids, mask, options);
        long width = ids.shape[1];
        for (int r = 0; r < Prompts.Length; r++)
        {
            var alone = GreedySearch.Generate(model, tensor(Prompts[r], [1, Prompts[r].Length]), null, options);
            Assert.Equal(alone[0].data<long>().ToArray(), batched[r, (int)(width - Prompts[r].Length)..].data<long>().ToArray());
        }
    }

    public static void InputsEmbedsMatchInputIds(CausalLm model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, mask) = LeftPad(Prompts);
        var fromIds = model.Forward(new CausalLmInput(ids, mask)).Logits;
        var fromEmbeds = model.Forward(new CausalLmInput(null, mask, InputsEmbeds: model.EmbedTokens(ids))).Logits;
        AssertClose(fromIds, fromEmbeds, "inputs_embeds");
    }

    /// <summary>Writes model.safetensors with small random weights (LayerNorm weights near 1) for every tensor of the architecture.</summary>
    public static void WriteRandomWeights(Architecture arch, string path)
    {
        var random = new Random(7);
        var tensors = arch.Parameters.Select(p =>
        {
            var values = new float[p.ElementCount];
            bool layerNormWeight = p.Shape.Length == 1 && p.Name.EndsWith(".weight", StringComparison.Ordinal); // 1-D weights are norms
            for (int i = 0; i < values.Length; i++)
                values[i] = (layerNormWeight ? 1f : 0f) + (float)(random.NextDouble() - 0.5) * 0.4f;
            return TensorData.FromFloat32(p.Name, p.Shape, values);
        });
        SafeTensorsWriter.Write(path, tensors);
    }
}
