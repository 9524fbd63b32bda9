using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// GPT2LMHeadModel (transformers 4.33 modeling_gpt2.py) as one ONNX graph with the causal-LM interface plus
/// position_ids. Reads top to bottom like GPT2Model.forward: wte(input_ids) + wpe(position_ids), the causal/padding
/// mask from attention_mask, n_layer pre-LN blocks (fused c_attn split into q, k, v, cache concat, scaled scores,
/// masked softmax, c_proj; ln_2, c_fc, activation_function, c_proj), ln_f, and the lm_head (tied to wte unless the
/// config says otherwise). Every linear is a Conv1D whose weight is already [in, out] on disk.
/// </summary>
public sealed class Gpt2Graph
{
    private readonly Gpt2Config _config;
    private readonly Gpt2Architecture _arch;
    private readonly WeightSource _weights;
    private readonly GraphBuilder _g = new("gpt2");
    private readonly int _heads;
    private readonly int _headDim;
    private readonly int _hidden;
    private readonly CausalLmGraphOptions _options;
    /// <summary>Per layer the baked prefix keys/values that start the cache on the first step; null unless the cache carries a prefix.</summary>
    private IReadOnlyList<string>? _prefixCache;
    /// <summary>The mask as an additive bias shared by every layer's MultiHeadAttention node; null where a constant prefix is attended beside the cache.</summary>
    private string? _bias;

    private Gpt2Graph(Gpt2Config config, WeightSource weights, CausalLmGraphOptions options)
    {
        _options = options;
        _config = config;
        _arch = new Gpt2Architecture(config);
        _weights = weights;
        _hidden = config.NEmbd;
        _heads = config.NHead;
        _headDim = config.NEmbd / config.NHead;
    }

    /// <summary>Builds the graph; weight initializers stay deferred until the model is written.</summary>
    public static GraphBuilder Build(Gpt2Config config, WeightSource weights) => Build(config, weights, CausalLmGraphOptions.Default);

    /// <summary>Builds the graph with <paramref name="options"/> (inputs_embeds input, constant attention prefix).</summary>
    public static GraphBuilder Build(Gpt2Config config, WeightSource weights, CausalLmGraphOptions options)
    {
        options.Prefix?.CheckFits(config.NLayer, config.NHead, config.NEmbd / config.NHead);
        var graph = new Gpt2Graph(config, weights, options);
        graph.Forward();
        return graph._g;
    }

    private void Forward()
    {
        var g = _g;
        _options.Declare(g, _config.NLayer, _heads, _headDim, _config.VocabSize, positionIds: _config.Family.TakesPositionIds, _hidden);

        string hidden;
        using (g.Scope("/transformer"))
        {
            var inputsEmbeds = _options.TakeInputsEmbeds
                ? CausalLmContract.InputsEmbeds
                : Layers.Embedding(g, _weights, "transformer.wte", CausalLmContract.InputIds);
            var positionEmbeds = Layers.Embedding(g, _weights, "transformer.wpe", _options.PositionIds(g));
            hidden = g.Add(inputsEmbeds, positionEmbeds, name: "embeddings/Add");

            var allowed = Attention.CausalPaddingMask(g, _options.Tokens, _options.AttentionMask(g));
            (_bias, _prefixCache) = _options.CachedAttentionInputs(g, null, allowed, _config.NLayer);
            for (int i = 0; i < _config.NLayer; i++) hidden = Block(i, hidden, allowed);

            hidden = Layers.LayerNorm(g, _weights, "transformer.ln_f", hidden, _config.LayerNormEpsilon);
        }

        hidden = CausalLmInterface.LastPositions(g, hidden);
        if (_arch.HeadIsTied)
        {
            using var _ = g.Scope("/lm_head");
            var batchSeq = g.Shape(hidden, 0, 2);
            if (_options.TakeInputsEmbeds) g.Initializer("transformer.wte.weight", _weights.AsIs("transformer.wte.weight"));
            Layers.TiedHead(g, _weights, "/lm_head", "transformer.wte.weight", hidden, _hidden, _config.VocabSize, batchSeq, CausalLmContract.Logits);
        }
        else
        {
            Layers.Linear(g, _weights, _options.Lora, _arch.Linears[^1], hidden, output: CausalLmContract.Logits);
        }
    }

    /// <summary>GPT2Block: ln_1 -> attn (+ residual) -> ln_2 -> mlp (+ residual).</summary>
    private string Block(int i, string hidden, string allowed)
    {
        var g = _g;
        var p = $"transformer.h.{i}";
        var attnOutput = SelfAttention(i, Layers.LayerNorm(g, _weights, $"{p}.ln_1", hidden, _config.LayerNormEpsilon), allowed);
        using (g.Scope(ModulePath.ToScope(p))) hidden = g.Add(attnOutput, hidden, name: "attn_residual/Add");

        var feedForward = Mlp(i, Layers.LayerNorm(g, _weights, $"{p}.ln_2", hidden, _config.LayerNormEpsilon));
        using (g.Scope(ModulePath.ToScope(p))) return g.Add(hidden, feedForward, name: "mlp_residual/Add");
    }

    /// <summary>
    /// GPT2Attention: c_attn split into q, k, v ([B, heads, T, head_dim]), cache concat, scores divided by
    /// sqrt(head_dim) (scale_attn_weights) and by layer_idx + 1 (scale_attn_by_inverse_layer_idx), causal and
    /// padding mask, softmax, weighted sum, c_proj.
    /// </summary>
    private string SelfAttention(int i, string x, string allowed)
    {
        var g = _g;
        var p = $"transformer.h.{i}.attn";
        using var _ = g.Scope(ModulePath.ToScope(p));

        var qkv = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.c_attn"), x);
        var parts = g.Split(qkv, 2, 3);
        var merged = _bias != null
            ? CausalLmGraphOptions.CachedAttention(g, _prefixCache, i, parts[0], parts[1], parts[2], _bias, _heads, ScaleFactor(i))
            : SpelledOutAttention(i, parts, allowed);
        return Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.c_proj"), merged);
    }

    /// <summary>The attention node by node, for a constant prefix attended beside the cache.</summary>
    private string SpelledOutAttention(int i, IReadOnlyList<string> parts, string allowed)
    {
        var g = _g;
        var q = Attention.SplitHeads(g, parts[0], _heads, _headDim, "query");
        var k = Attention.SplitHeads(g, parts[1], _heads, _headDim, "key");
        var v = Attention.SplitHeads(g, parts[2], _heads, _headDim, "value");

        k = CausalLmGraphOptions.AppendToCache(g, _prefixCache, 2 * i, CausalLmContract.PastKey(i), k, CausalLmContract.PresentKey(i), "key/Concat");
        v = CausalLmGraphOptions.AppendToCache(g, _prefixCache, 2 * i + 1, CausalLmContract.PastValue(i), v, CausalLmContract.PresentValue(i), "value/Concat");
        var prefix = _options.PrefixConstants(g, i, _heads);

        var scores = Attention.Scores(g, q, k, prefix, s => Scale(s, i));
        var context = Attention.MaskedSoftmaxContext(g, scores, v, allowed, prefix);
        return Attention.MergeHeads(g, context, _hidden);
    }

    /// <summary>Both of <see cref="Scale"/>'s factors as one (a MultiHeadAttention node's scale).</summary>
    private float ScaleFactor(int i)
    {
        double factor = 1.0;
        if (_config.ScaleAttnWeights) factor /= Math.Sqrt(_headDim);
        if (_config.ScaleAttnByInverseLayerIdx) factor /= i + 1;
        return (float)factor;
    }

    /// <summary>The scaling of GPT2Attention's scores for layer <paramref name="i"/>.</summary>
    private string Scale(string scores, int i)
    {
        var g = _g;
        if (_config.ReorderAndUpcastAttn)
        {
            // _upcast_and_reordered_attn: one float32 baddbmm with alpha = the product of both scale factors
            var factor = ScaleFactor(i);
            return factor == 1f ? scores : g.Mul(scores, g.Constant(factor));
        }
        // _attn: attn_weights / full([], head_dim ** 0.5), then / float(layer_idx + 1)
        if (_config.ScaleAttnWeights) scores = g.Div(scores, g.Constant((float)Math.Sqrt(_headDim)));
        if (_config.ScaleAttnByInverseLayerIdx) scores = g.Div(scores, g.Constant((float)(i + 1)));
        return scores;
    }

    /// <summary>GPT2MLP: c_fc -> ACT2FN[activation_function] -> c_proj.</summary>
    private string Mlp(int i, string x)
    {
        var g = _g;
        var p = $"transformer.h.{i}.mlp";
        using var _ = g.Scope(ModulePath.ToScope(p));
        var h = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.c_fc"), x);
        h = Layers.Activation(g, _config.ActivationFunction, h, "act");
        return Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.c_proj"), h);
    }

    private LinearSpec Linear(string path) => _arch.Linear(path);
}
