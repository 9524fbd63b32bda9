using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Support;

/// <summary>
/// Checks for decoder-only models. Left-padded batches pass positions = cumsum(mask) - 1 (pads at 1), as
/// prepare_inputs_for_generation does: GPT-2 (learned positions) and LLaMA (RoPE) read them, BLOOM (ALiBi) and OPT
/// ignore them and derive the same positions from the mask.
/// </summary>
internal static class CausalLmChecks
{
    private const float Tol = 1e-4f;

    /// <summary>Default prompts (ids up to 800).</summary>
    public static readonly long[][] Prompts = [[5, 17, 301, 44, 9, 800, 12], [77, 3, 250], [640, 21, 8, 99, 402]];

    /// <summary>Prompts with ids &lt; 100, for the BLOOM/OPT tests whose small random models have a 100-token vocabulary.</summary>
    public static readonly long[][] SmallVocabPrompts = [[5, 17, 31, 44, 9, 80, 12], [77, 3, 25], [64, 21, 8, 99, 42]];

    /// <summary>The fixture's base model: tests/fixtures/peft-reference/{arch}/base_model.</summary>
    public static CausalLm LoadFixture(string arch) => (CausalLm)ModelLoader.Load(Paths.Case(arch, "base_model"));

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

    public static void LeftPaddingMatchesRowsAlone(CausalLm model, long[][]? prompts = null)
    {
        prompts ??= Prompts;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, mask) = LeftPad(prompts);
        var batched = model.Forward(new CausalLmInput(ids, mask, PositionIds: PositionsFromMask(mask))).Logits;
        long width = ids.shape[1];
        for (int r = 0; r < prompts.Length; r++)
        {
            var alone = model.Forward(new CausalLmInput(tensor(prompts[r], [1, prompts[r].Length]))).Logits[0];
            AssertClose(alone, batched[r, (int)(width - prompts[r].Length)..], $"row {r}");
        }
    }

    /// <summary>Left-padded <see cref="Prompts"/> and cached steps of one token, then one, against one full forward.</summary>
    public static void LeftPaddedCachedStepsMatchFullForward(CausalLm model) =>
        LeftPaddedCachedSteps(model, Prompts, [1, 1], cacheLayout: null);

    /// <summary>
    /// Left-padded <see cref="SmallVocabPrompts"/> and cached steps of two tokens, then one, against one full forward;
    /// also checks the cache: one entry per layer, keys and values [B, heads, T, headDim], and its length after each step.
    /// </summary>
    public static void LeftPaddedCachedStepsMatchFullForward(CausalLm model, int heads, int headDim) =>
        LeftPaddedCachedSteps(model, SmallVocabPrompts, [2, 1], (heads, headDim));

    /// <summary>Row r continues with tokens 10r+1, 10r+2, ... (rows from 1), fed in cached calls of <paramref name="steps"/> tokens.</summary>
    private static void LeftPaddedCachedSteps(CausalLm model, long[][] prompts, int[] steps, (int Heads, int HeadDim)? cacheLayout)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (prompt, promptMask) = LeftPad(prompts);
        long batch = prompt.shape[0];
        int t0 = (int)prompt.shape[1], added = steps.Sum();
        var more = tensor(Enumerable.Range(1, (int)batch).SelectMany(r => Enumerable.Range(1, added).Select(j => 10L * r + j)).ToArray(), [batch, added]);
        var ids = cat([prompt, more], 1);
        var mask = cat([promptMask, ones_like(more)], 1);
        var positions = PositionsFromMask(mask);
        var full = model.Forward(new CausalLmInput(ids, mask, PositionIds: positions)).Logits;

        var output = model.Forward(new CausalLmInput(prompt, promptMask, PositionIds: positions[.., ..t0], UseCache: true));
        if (cacheLayout is var (heads, headDim))
        {
            var cache = output.PresentKeyValues!;
            Assert.Equal(model.Config.Dimensions.NumLayers, cache.Self.Count);
            Assert.Equal([batch, heads, t0, headDim], cache.Self[0].Key.shape);
            Assert.Equal([batch, heads, t0, headDim], cache.Self[0].Value.shape);
        }
        for (int r = 0; r < prompts.Length; r++)
        {
            int pad = t0 - prompts[r].Length;
            AssertClose(full[r, pad..t0], output.Logits[r, pad..], $"prompt row {r}");
        }

        int at = t0;
        foreach (int step in steps)
        {
            output = model.Forward(new CausalLmInput(more[.., (at - t0)..(at - t0 + step)], mask[.., ..(at + step)],
                PastKeyValues: output.PresentKeyValues, PositionIds: positions[.., at..(at + step)], UseCache: true));
            if (cacheLayout is not null) Assert.Equal(at + step, output.PresentKeyValues!.Length);
            AssertClose(full[.., at..(at + step)], output.Logits, $"{step} cached token(s) at {at}");
            at += step;
        }
    }

    public static void BatchedGreedyMatchesRowsAlone(CausalLm model, long[][]? prompts = null, int newTokens = 5)
    {
        prompts ??= Prompts;
        using var scope = NewDisposeScope();
        var (ids, mask) = LeftPad(prompts);
        var options = new GreedyOptions(newTokens, [-1L], 0);
        var batched = GreedySearch.Generate(model, ids, mask, options);
        long width = ids.shape[1];
        for (int r = 0; r < prompts.Length; r++)
        {
            var alone = GreedySearch.Generate(model, tensor(prompts[r], [1, prompts[r].Length]), null, options);
            Assert.Equal(alone[0].data<long>().ToArray(), batched[r, (int)(width - prompts[r].Length)..].data<long>().ToArray());
        }
    }

    public static void InputsEmbedsMatchInputIds(CausalLm model, long[][]? prompts = null)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, mask) = LeftPad(prompts ?? Prompts);
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
