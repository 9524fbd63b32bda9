using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// BloomForCausalLM (transformers 4.33 modeling_bloom.py) as one ONNX graph with the causal-LM interface.
/// Reads top to bottom like BloomModel.forward: embeddings + word_embeddings_layernorm, ALiBi and the
/// causal/padding mask from attention_mask, n_layer blocks (fused query_key_value, cache concat, dense,
/// tanh-GELU MLP, residuals), ln_f, and the lm_head (tied to the embeddings unless the config says otherwise).
/// </summary>
public sealed class BloomGraph
{
    private readonly BloomConfig _config;
    private readonly BloomArchitecture _arch;
    private readonly WeightSource _weights;
    private readonly GraphBuilder _g = new("bloom");
    private readonly int _heads;
    private readonly int _headDim;
    private readonly int _hidden;
    private readonly CausalLmGraphOptions _options;
    /// <summary>Per layer the baked prefix keys/values that start the cache on the first step; null unless the cache carries a prefix.</summary>
    private IReadOnlyList<string>? _prefixCache;

    private BloomGraph(BloomConfig config, WeightSource weights, CausalLmGraphOptions options)
    {
        _options = options;
        _config = config;
        _arch = new BloomArchitecture(config);
        _weights = weights;
        _hidden = config.Width;
        _heads = config.NHead;
        _headDim = config.Width / config.NHead;
    }

    /// <summary>Builds the graph; weight initializers stay deferred until the model is written.</summary>
    public static GraphBuilder Build(BloomConfig config, WeightSource weights) => Build(config, weights, CausalLmGraphOptions.Default);

    /// <summary>Builds the graph with <paramref name="options"/> (inputs_embeds input, constant attention prefix).</summary>
    public static GraphBuilder Build(BloomConfig config, WeightSource weights, CausalLmGraphOptions options)
    {
        options.Prefix?.CheckFits(config.NLayer, config.NHead, config.Width / config.NHead);
        var graph = new BloomGraph(config, weights, options);
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
            hidden = _options.TakeInputsEmbeds
                ? CausalLmContract.InputsEmbeds
                : Layers.Embedding(g, _weights, "transformer.word_embeddings", CausalLmContract.InputIds);
            hidden = Layers.LayerNorm(g, _weights, "transformer.word_embeddings_layernorm", hidden, _config.LayerNormEpsilon);

            // With a prefix, ALiBi positions and the mask cover its ones too (a past of prefix length).
            var mask = _options.AttentionMask(g);
            var alibi = Attention.Alibi(g, mask, _heads);
            var allowed = Attention.CausalPaddingMask(g, _options.Tokens, mask);
            // one MultiHeadAttention node per layer, unless a constant prefix is attended beside the cache
            (var bias, _prefixCache) = _options.CachedAttentionInputs(g, alibi, allowed, _config.NLayer);
            for (int i = 0; i < _config.NLayer; i++) hidden = Block(i, hidden, alibi, allowed, bias);

            hidden = Layers.LayerNorm(g, _weights, "transformer.ln_f", hidden, _config.LayerNormEpsilon);
        }

        hidden = CausalLmInterface.LastPositions(g, hidden);
        var head = _arch.Linears[^1];
        if (_arch.HeadIsTied)
        {
            using var _ = g.Scope("/lm_head");
            var batchSeq = g.Shape(hidden, 0, 2);
            if (_options.TakeInputsEmbeds) g.Initializer("transformer.word_embeddings.weight", _weights.AsIs("transformer.word_embeddings.weight"));
            Layers.TiedHead(g, _weights, "/lm_head", "transformer.word_embeddings.weight", hidden, _hidden, _config.VocabSize, batchSeq, CausalLmContract.Logits);
        }
        else
        {
            Layers.Linear(g, _weights, _options.Lora, head, hidden, output: CausalLmContract.Logits);
        }
    }

    /// <summary>BloomBlock: input_layernorm -> self_attention (+ residual) -> post_attention_layernorm -> mlp (+ residual).</summary>
    private string Block(int i, string hidden, string alibi, string allowed, string? bias)
    {
        var p = $"transformer.h.{i}";
        var layerNormOutput = Layers.LayerNorm(_g, _weights, $"{p}.input_layernorm", hidden, _config.LayerNormEpsilon);
        var residual = _config.ApplyResidualConnectionPostLayernorm ? layerNormOutput : hidden;
        var attentionOutput = SelfAttention(i, layerNormOutput, residual, alibi, allowed, bias);

        layerNormOutput = Layers.LayerNorm(_g, _weights, $"{p}.post_attention_layernorm", attentionOutput, _config.LayerNormEpsilon);
        residual = _config.ApplyResidualConnectionPostLayernorm ? layerNormOutput : attentionOutput;
        return Mlp(i, layerNormOutput, residual);
    }

    /// <summary>
    /// BloomAttention: fused qkv viewed as [B, T, heads, 3, head_dim], cache concat, ALiBi + masked softmax, dense.
    /// With <paramref name="bias"/> (ALiBi and the mask in one tensor) all but the qkv split is one MultiHeadAttention
    /// node; without it (a constant prefix attended beside the cache) the steps are spelled out.
    /// </summary>
    private string SelfAttention(int i, string x, string residual, string alibi, string allowed, string? bias)
    {
        var g = _g;
        var p = $"transformer.h.{i}.self_attention";
        using var _ = g.Scope(ModulePath.ToScope(p));

        var fused = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.query_key_value"), x);
        var scale = (float)(1.0 / Math.Sqrt(_headDim));
        var merged = bias != null ? FusedAttention(i, fused, bias, scale) : SpelledOutAttention(i, fused, alibi, allowed, scale);
        var output = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.dense"), merged);
        return g.Add(output, residual, name: "residual/Add");
    }

    /// <summary>Fused qkv [B, T, heads * 3 * head_dim] -> q, k, v [B, T, heads * head_dim] -> one MultiHeadAttention node (appending to the cache).</summary>
    private string FusedAttention(int i, string fused, string bias, float scale)
    {
        var g = _g;
        var qkv = g.Split(g.Reshape(fused, [0, 0, _heads, 3, _headDim]), 3, 3);
        string Part(int n, string name) => g.Reshape(qkv[n], [0, 0, _hidden], name: $"{name}/Reshape");
        return CausalLmGraphOptions.CachedAttention(g, _prefixCache, i, Part(0, "query"), Part(1, "key"), Part(2, "value"), bias, _heads, scale);
    }

    /// <summary>The same attention node by node, for a constant prefix attended beside the cache.</summary>
    private string SpelledOutAttention(int i, string fused, string alibi, string allowed, float scale)
    {
        var g = _g;
        // [B, T, heads, 3, head_dim] -> [3, B, heads, T, head_dim] -> q, k, v [B, heads, T, head_dim]
        var split = g.Transpose(g.Reshape(fused, [0, 0, _heads, 3, _headDim]), [3, 0, 2, 1, 4]);
        var parts = g.Split(split, 0, 3);
        var q = g.Squeeze(parts[0], [0], name: "query/Squeeze");
        var k = g.Squeeze(parts[1], [0], name: "key/Squeeze");
        var v = g.Squeeze(parts[2], [0], name: "value/Squeeze");

        k = CausalLmGraphOptions.AppendToCache(g, _prefixCache, 2 * i, CausalLmContract.PastKey(i), k, CausalLmContract.PresentKey(i), "key/Concat");
        v = CausalLmGraphOptions.AppendToCache(g, _prefixCache, 2 * i + 1, CausalLmContract.PastValue(i), v, CausalLmContract.PresentValue(i), "value/Concat");
        var prefix = _options.PrefixConstants(g, i, _heads);

        var context = Attention.ScaledDotProduct(g, q, k, v, scale, alibi, allowed, prefix);
        return Attention.MergeHeads(g, context, _hidden);
    }

    /// <summary>BloomMLP: dense_h_to_4h -> bloom_gelu -> dense_4h_to_h, plus the residual.</summary>
    private string Mlp(int i, string x, string residual)
    {
        var g = _g;
        var p = $"transformer.h.{i}.mlp";
        using var _ = g.Scope(ModulePath.ToScope(p));
        var h = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.dense_h_to_4h"), x);
        h = Layers.BloomGelu(g, h);
        h = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.dense_4h_to_h"), h);
        return g.Add(h, residual, name: "residual/Add");
    }

    private LinearSpec Linear(string path) => _arch.Linear(path);
}
