using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Models;

/// <summary>GPT-2 beyond the fixture's single batch: the KV cache, left padding with explicit positions, inputs_embeds, a foreign past.</summary>
public class Gpt2ModelTests
{
    private static CausalLm LoadFixture() => (CausalLm)ModelLoader.Load(Paths.Case("gpt2", "base_model"));

    [Fact]
    public void Cached_steps_match_the_full_forward()
    {
        using var model = LoadFixture();
        PositionedCausalLmChecks.CachedStepsMatchFullForward(model);
    }

    [Fact]
    public void Left_padded_rows_with_positions_from_the_mask_match_each_row_alone()
    {
        using var model = LoadFixture();
        PositionedCausalLmChecks.LeftPaddingMatchesRowsAlone(model);
    }

    [Fact]
    public void Left_padded_cached_steps_match_the_full_forward()
    {
        using var model = LoadFixture();
        PositionedCausalLmChecks.LeftPaddedCachedStepsMatchFullForward(model);
    }

    [Fact]
    public void Batched_left_padded_greedy_matches_each_row_alone()
    {
        using var model = LoadFixture();
        PositionedCausalLmChecks.BatchedGreedyMatchesRowsAlone(model);
    }

    [Fact]
    public void Inputs_embeds_replace_the_token_lookup_and_still_get_position_embeddings()
    {
        using var model = LoadFixture();
        PositionedCausalLmChecks.InputsEmbedsMatchInputIds(model);
    }

    [Fact]
    public void A_foreign_past_as_prefix_tuning_passes_it_works_in_one_call_or_token_by_token()
    {
        using var model = LoadFixture();
        PositionedCausalLmChecks.ForeignPastIsConsistent(model);
    }

    [Fact]
    public void Loss_backpropagates_to_the_first_layer()
    {
        using var model = LoadFixture();
        PositionedCausalLmChecks.LossBackpropagates(model, "transformer.h.0.attn.c_attn.weight");
    }

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

/// <summary>
/// Checks for decoder-only models whose positions come from position_ids (GPT-2 learned positions, LLaMA RoPE):
/// left-padded batches pass positions = cumsum(mask) - 1 (pads at 1), as prepare_inputs_for_generation does.
/// </summary>
internal static class PositionedCausalLmChecks
{
    private const float Tol = 1e-4f;

    private static readonly long[][] Prompts = [[5, 17, 301, 44, 9, 800, 12], [77, 3, 250], [640, 21, 8, 99, 402]];

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

    /// <summary>Positions as transformers' prepare_inputs_for_generation: cumsum(mask) - 1, pads set to 1.</summary>
    public static Tensor PositionsFromMask(Tensor mask) => (mask.cumsum(-1) - 1).masked_fill(mask.eq(0), 1);

    public static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= Tol, $"{what}: max |diff| {diff:g4} > {Tol}");
    }

    /// <summary>Unpadded prompt with UseCache, then two tokens, then one: each step equals the full forward there.</summary>
    public static void CachedStepsMatchFullForward(CausalLm model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var d = model.Config.Dimensions;
        var prompt = tensor(new long[] { 5, 17, 301, 44, 9, 800, 640, 21, 8, 99, 402, 3 }, [2, 6]);
        var more = tensor(new long[] { 11, 12, 13, 21, 22, 23 }, [2, 3]);
        var ids = cat([prompt, more], 1);
        var full = model.Forward(new CausalLmInput(ids)).Logits;

        var first = model.Forward(new CausalLmInput(prompt, UseCache: true));
        var cache = first.PresentKeyValues!;
        Assert.Equal(d.NumLayers, cache.Self.Count);
        Assert.Equal([2L, d.NumKeyValueHeads, 6, d.HeadDim], cache.Self[0].Key.shape);
        Assert.Equal([2L, d.NumKeyValueHeads, 6, d.HeadDim], cache.Self[0].Value.shape);

        // Masks of ones over past + current are given from here on (and must change nothing).
        var second = model.Forward(new CausalLmInput(more[.., ..2], ones(2, 8, dtype: int64), PastKeyValues: cache, UseCache: true));
        Assert.Equal(8, second.PresentKeyValues!.Length);
        var third = model.Forward(new CausalLmInput(more[.., 2..], ones(2, 9, dtype: int64), PastKeyValues: second.PresentKeyValues, UseCache: true));
        Assert.Equal(9, third.PresentKeyValues!.Length);

        AssertClose(full[.., ..6], first.Logits, "prompt");
        AssertClose(full[.., 6..8], second.Logits, "two cached tokens");
        AssertClose(full[.., 8..], third.Logits, "one cached token");
    }

    public static void LeftPaddingMatchesRowsAlone(CausalLm model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, mask) = LeftPad(Prompts);
        var batched = model.Forward(new CausalLmInput(ids, mask, PositionIds: PositionsFromMask(mask))).Logits;
        long width = ids.shape[1];
        for (int r = 0; r < Prompts.Length; r++)
        {
            var alone = model.Forward(new CausalLmInput(tensor(Prompts[r], [1, Prompts[r].Length]))).Logits[0];
            AssertClose(alone, batched[r, (int)(width - Prompts[r].Length)..], $"row {r}");
        }
    }

    /// <summary>Left-padded prompt and cached steps, positions from the mask, against one full forward.</summary>
    public static void LeftPaddedCachedStepsMatchFullForward(CausalLm model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (prompt, promptMask) = LeftPad(Prompts);
        long t0 = prompt.shape[1];
        var more = tensor(new long[] { 11, 12, 21, 22, 31, 32 }, [3, 2]);
        var ids = cat([prompt, more], 1);
        var mask = cat([promptMask, ones_like(more)], 1);
        var positions = PositionsFromMask(mask);
        var full = model.Forward(new CausalLmInput(ids, mask, PositionIds: positions)).Logits;

        var first = model.Forward(new CausalLmInput(prompt, promptMask, PositionIds: positions[.., ..(int)t0], UseCache: true));
        var second = model.Forward(new CausalLmInput(more[.., ..1], mask[.., ..(int)(t0 + 1)], PastKeyValues: first.PresentKeyValues,
            PositionIds: positions[.., (int)t0..(int)(t0 + 1)], UseCache: true));
        var third = model.Forward(new CausalLmInput(more[.., 1..], mask, PastKeyValues: second.PresentKeyValues,
            PositionIds: positions[.., (int)(t0 + 1)..], UseCache: true));

        for (int r = 0; r < Prompts.Length; r++)
        {
            int pad = (int)t0 - Prompts[r].Length;
            AssertClose(full[r, pad..(int)t0], first.Logits[r, pad..], $"prompt row {r}");
        }
        AssertClose(full[.., (int)t0..(int)(t0 + 1)], second.Logits, "first cached token");
        AssertClose(full[.., ^1..], third.Logits, "second cached token");
    }

    public static void BatchedGreedyMatchesRowsAlone(CausalLm model)
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = LeftPad(Prompts);
        var options = new GreedyOptions(5, [-1L], 0);
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
        var positions = PositionsFromMask(mask);
        var fromIds = model.Forward(new CausalLmInput(ids, mask, PositionIds: positions)).Logits;
        var fromEmbeds = model.Forward(new CausalLmInput(null, mask, InputsEmbeds: model.EmbedTokens(ids), PositionIds: positions)).Logits;
        AssertClose(fromIds, fromEmbeds, "inputs_embeds");
    }

    /// <summary>
    /// Training mode: the loss backpropagates through the per-layer dispose scopes (the graph keeps what it saved)
    /// to a weight of the first layer, and the gradient is finite and non-zero.
    /// </summary>
    public static void LossBackpropagates(CausalLm model, string weight)
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = LeftPad(Prompts);
        var labels = ids.masked_fill(mask.eq(0), LmLoss.IgnoreIndex);
        var w = model.Parameters[weight].requires_grad_(true);
        model.Training = true;
        try
        {
            var output = model.Forward(new CausalLmInput(ids, mask, Labels: labels, PositionIds: PositionsFromMask(mask)));
            output.Loss!.backward();
            Assert.NotNull(w.grad);
            var norm = w.grad!.norm().item<float>();
            Assert.True(float.IsFinite(norm) && norm > 0, $"gradient norm {norm}");
        }
        finally
        {
            model.Training = false;
            w.requires_grad_(false);
        }
    }

    /// <summary>
    /// A past that no tokens produced (random keys/values, as a prefix-tuning prefix), with a mask over past + current:
    /// the whole continuation in one call equals it token by token, and default positions are arange(past, past + T).
    /// </summary>
    public static void ForeignPastIsConsistent(CausalLm model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var d = model.Config.Dimensions;
        const int batch = 2, prefix = 5, length = 4;
        var generator = new TorchSharp.torch.Generator(7);
        KvCache Prefix()
        {
            var cache = new KvCache();
            for (int i = 0; i < d.NumLayers; i++)
                cache.Self.Add((randn([batch, d.NumKeyValueHeads, prefix, d.HeadDim], generator: generator),
                                randn([batch, d.NumKeyValueHeads, prefix, d.HeadDim], generator: generator)));
            return cache;
        }
        var past = Prefix();
        var ids = tensor(new long[] { 5, 17, 301, 44, 9, 800, 640, 21 }, [batch, length]);
        var mask = ones(batch, prefix + length, dtype: int64);

        var whole = model.Forward(new CausalLmInput(ids, mask, PastKeyValues: past, UseCache: true));
        Assert.Equal(prefix + length, whole.PresentKeyValues!.Length);
        var explicitPositions = arange(prefix, prefix + length, dtype: int64).unsqueeze(0).expand(batch, length);
        AssertClose(whole.Logits, model.Forward(new CausalLmInput(ids, mask, PastKeyValues: past, PositionIds: explicitPositions)).Logits, "default positions");

        var cache = past;
        for (int t = 0; t < length; t++)
        {
            var step = model.Forward(new CausalLmInput(ids[.., t..(t + 1)], mask[.., ..(prefix + t + 1)], PastKeyValues: cache, UseCache: true));
            AssertClose(whole.Logits[.., t..(t + 1)], step.Logits, $"token {t}");
            cache = step.PresentKeyValues!;
        }
        AssertClose(whole.PresentKeyValues.Self[^1].Key, cache.Self[^1].Key, "present keys");
    }
}
