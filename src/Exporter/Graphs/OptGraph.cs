using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// OPTForCausalLM (transformers 4.33 modeling_opt.py) as one ONNX graph with the causal-LM interface (no
/// position_ids input: like OPTLearnedPositionalEmbedding, and like Optimum for transformers &lt; 4.46, positions
/// come from attention_mask). Reads top to bottom like OPTDecoder.forward: embed_tokens (-> project_in) +
/// embed_positions, the causal/padding mask, decoder layers (pre-LN, or post-LN when do_layer_norm_before is false),
/// final_layer_norm where the model has one, project_out, and the lm_head (tied to embed_tokens unless the config
/// says otherwise).
/// </summary>
public sealed class OptGraph
{
    private readonly OptConfig _config;
    private readonly OptArchitecture _arch;
    private readonly WeightSource _weights;
    private readonly GraphBuilder _g = new("opt");
    private readonly int _heads;
    private readonly int _headDim;
    private readonly int _hidden;
    private readonly CausalLmGraphOptions _options;
    /// <summary>Per layer the baked prefix keys/values that start the cache on the first step; null unless the cache carries a prefix.</summary>
    private IReadOnlyList<string>? _prefixCache;
    /// <summary>The mask as an additive bias shared by every layer's MultiHeadAttention node; null where a constant prefix is attended beside the cache.</summary>
    private string? _bias;
    private string _mask = CausalLmContract.AttentionMask;

    private OptGraph(OptConfig config, WeightSource weights, CausalLmGraphOptions options)
    {
        _options = options;
        _config = config;
        _arch = new OptArchitecture(config);
        _weights = weights;
        _hidden = config.HiddenSize;
        _heads = config.NumAttentionHeads;
        _headDim = config.HiddenSize / config.NumAttentionHeads;
    }

    /// <summary>Builds the graph; weight initializers stay deferred until the model is written.</summary>
    public static GraphBuilder Build(OptConfig config, WeightSource weights) => Build(config, weights, CausalLmGraphOptions.Default);

    /// <summary>Builds the graph with <paramref name="options"/> (inputs_embeds input, constant attention prefix).</summary>
    public static GraphBuilder Build(OptConfig config, WeightSource weights, CausalLmGraphOptions options)
    {
        options.Prefix?.CheckFits(config.NumHiddenLayers, config.NumAttentionHeads, config.HiddenSize / config.NumAttentionHeads);
        var graph = new OptGraph(config, weights, options);
        graph.Forward();
        return graph._g;
    }

    private void Forward()
    {
        var g = _g;
        _options.Declare(g, _config.NumHiddenLayers, _heads, _headDim, _config.VocabSize, positionIds: _config.Family.TakesPositionIds, _config.EmbedDim);

        string hidden;
        using (g.Scope("/model/decoder"))
        {
            var inputsEmbeds = _options.TakeInputsEmbeds
                ? CausalLmContract.InputsEmbeds
                : Layers.Embedding(g, _weights, "model.decoder.embed_tokens", CausalLmContract.InputIds);
            // With a prefix, the mask (and so the positions) covers its ones too (a past of prefix length).
            _mask = _options.AttentionMask(g);
            var allowed = Attention.CausalPaddingMask(g, _options.Tokens, _mask);
            var posEmbeds = EmbedPositions();

            if (_arch.HasProjections) inputsEmbeds = Layers.Linear(g, _weights, _options.Lora, Linear("model.decoder.project_in"), inputsEmbeds);
            hidden = g.Add(inputsEmbeds, posEmbeds, name: "embeddings/Add");

            (_bias, _prefixCache) = _options.CachedAttentionInputs(g, null, allowed, _config.NumHiddenLayers);
            for (int i = 0; i < _config.NumHiddenLayers; i++) hidden = DecoderLayer(i, hidden, allowed);

            if (_arch.HasFinalLayerNorm) hidden = LayerNorm("model.decoder.final_layer_norm", hidden);
            if (_arch.HasProjections) hidden = Layers.Linear(g, _weights, _options.Lora, Linear("model.decoder.project_out"), hidden);
        }

        hidden = CausalLmInterface.LastPositions(g, hidden);
        if (_arch.HeadIsTied)
        {
            using var _ = g.Scope("/lm_head");
            var batchSeq = g.Shape(hidden, 0, 2);
            if (_options.TakeInputsEmbeds) g.Initializer(_arch.WordEmbeddings, _weights.AsIs(_arch.WordEmbeddings));
            Layers.TiedHead(g, _weights, "/lm_head", _arch.WordEmbeddings, hidden, _config.EmbedDim, _config.VocabSize, batchSeq, CausalLmContract.Logits);
        }
        else
        {
            Layers.Linear(g, _weights, _options.Lora, _arch.Linears[^1], hidden, output: CausalLmContract.Logits);
        }
    }

    /// <summary>
    /// OPTLearnedPositionalEmbedding(attention_mask, past_key_values_length): positions = cumsum(mask) * mask - 1
    /// (padding gets -1), the current tokens' columns [past:], + offset 2, looked up in embed_positions.
    /// </summary>
    private string EmbedPositions()
    {
        var g = _g;
        const string path = "model.decoder.embed_positions";
        using var _ = g.Scope(ModulePath.ToScope(path));
        var mask = _mask;
        var positions = g.Sub(g.Mul(g.CumSum(mask, 1), mask), g.Constant(1L));                          // [B, past + T]
        var past = g.Sub(g.Shape(mask, 1, 2), g.Shape(_options.Tokens, 1, 2));                          // [1]
        var current = g.Op("Slice", [positions, past, g.Ints(long.MaxValue), g.Ints(1)]);              // [B, T]
        var indices = g.Add(current, g.Constant((long)OptArchitecture.PositionOffset));
        var table = g.Initializer(path + ".weight", _weights.AsIs(path + ".weight"));
        return g.Gather(table, indices);
    }

    /// <summary>
    /// OPTDecoderLayer: [self_attn_layer_norm] -> self_attn -> + residual [-> self_attn_layer_norm when post-LN];
    /// [final_layer_norm] -> fc1 -> activation_fn -> fc2 -> + residual [-> final_layer_norm when post-LN].
    /// </summary>
    private string DecoderLayer(int i, string hidden, string allowed)
    {
        var g = _g;
        var p = $"model.decoder.layers.{i}";
        bool pre = _config.DoLayerNormBefore;

        var residual = hidden;
        if (pre) hidden = LayerNorm($"{p}.self_attn_layer_norm", hidden);
        hidden = SelfAttention(i, hidden, allowed);
        using (g.Scope(ModulePath.ToScope(p))) hidden = g.Add(residual, hidden, name: "attn_residual/Add");
        if (!pre) hidden = LayerNorm($"{p}.self_attn_layer_norm", hidden);

        residual = hidden;
        if (pre) hidden = LayerNorm($"{p}.final_layer_norm", hidden);
        hidden = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.fc1"), hidden);
        using (g.Scope(ModulePath.ToScope(p))) hidden = Layers.Activation(g, _config.ActivationFunction, hidden, "activation_fn");
        hidden = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.fc2"), hidden);
        using (g.Scope(ModulePath.ToScope(p))) hidden = g.Add(residual, hidden, name: "mlp_residual/Add");
        if (!pre) hidden = LayerNorm($"{p}.final_layer_norm", hidden);
        return hidden;
    }

    /// <summary>
    /// OPTAttention: q_proj(x) * head_dim^-0.5, k_proj, v_proj split into heads, cache concat, q @ k^T with the
    /// causal/padding mask (transformers adds finfo.min and clamps; masked keys get zero weight either way),
    /// softmax, weighted sum, out_proj.
    /// </summary>
    private string SelfAttention(int i, string x, string allowed)
    {
        var g = _g;
        var p = $"model.decoder.layers.{i}.self_attn";
        using var _ = g.Scope(ModulePath.ToScope(p));

        var query = g.Mul(Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.q_proj"), x), g.Constant((float)Math.Pow(_headDim, -0.5)), name: "scaling/Mul");
        var key = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.k_proj"), x);
        var value = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.v_proj"), x);
        // the query is already scaled, as OPTAttention scales it: the node's own scale is 1
        var merged = _bias != null
            ? CausalLmGraphOptions.CachedAttention(g, _prefixCache, i, query, key, value, _bias, _heads, 1f)
            : SpelledOutAttention(i, query, key, value, allowed);
        return Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.out_proj"), merged);
    }

    /// <summary>The attention node by node, for a constant prefix attended beside the cache.</summary>
    private string SpelledOutAttention(int i, string query, string key, string value, string allowed)
    {
        var g = _g;
        var q = Attention.SplitHeads(g, query, _heads, _headDim, "query");
        var k = Attention.SplitHeads(g, key, _heads, _headDim, "key");
        var v = Attention.SplitHeads(g, value, _heads, _headDim, "value");

        k = CausalLmGraphOptions.AppendToCache(g, _prefixCache, 2 * i, CausalLmContract.PastKey(i), k, CausalLmContract.PresentKey(i), "key/Concat");
        v = CausalLmGraphOptions.AppendToCache(g, _prefixCache, 2 * i + 1, CausalLmContract.PastValue(i), v, CausalLmContract.PresentValue(i), "value/Concat");
        var prefix = _options.PrefixConstants(g, i, _heads);

        var context = Attention.MaskedSoftmaxContext(g, Attention.Scores(g, q, k, prefix), v, allowed, prefix);
        return Attention.MergeHeads(g, context, _hidden);
    }

    /// <summary>An OPT LayerNorm over hidden_size (constant ones/zeros when layer_norm_elementwise_affine is false).</summary>
    private string LayerNorm(string path, string x) =>
        Layers.LayerNorm(_g, _weights, path, x, OptArchitecture.LayerNormEpsilon, _hidden, _config.LayerNormElementwiseAffine);

    private LinearSpec Linear(string path) => _arch.Linear(path);
}
