using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// LlamaForCausalLM (transformers 4.33 modeling_llama.py) as one ONNX graph with the causal-LM interface plus
/// position_ids. Reads top to bottom like LlamaModel.forward: embed_tokens, RoPE cos/sin from position_ids (a
/// constant inv_freq, no table), the causal/padding mask, pre-RMSNorm decoder layers (q/k/v projections, rotary
/// q and k, cache concat with num_key_value_heads, kv heads repeated for grouped-query attention, o_proj; SwiGLU
/// MLP), the final norm and lm_head (untied unless tie_word_embeddings). pretraining_tp > 1 only slices the same
/// products in transformers, so it is computed unsliced here.
/// </summary>
public sealed class LlamaGraph
{
    private readonly LlamaConfig _config;
    private readonly LlamaArchitecture _arch;
    private readonly WeightSource _weights;
    private readonly GraphBuilder _g = new("llama");
    private readonly int _heads;
    private readonly int _kvHeads;
    private readonly int _headDim;
    private readonly int _hidden;
    private readonly CausalLmGraphOptions _options;
    /// <summary>Per layer the baked prefix keys/values that start the cache on the first step; null unless the cache carries a prefix.</summary>
    private IReadOnlyList<string>? _prefixCache;

    private LlamaGraph(LlamaConfig config, WeightSource weights, CausalLmGraphOptions options)
    {
        _options = options;
        _config = config;
        _arch = new LlamaArchitecture(config);
        _weights = weights;
        _hidden = config.HiddenSize;
        _heads = config.NumAttentionHeads;
        _kvHeads = config.KeyValueHeads;
        _headDim = config.HiddenSize / config.NumAttentionHeads;
    }

    /// <summary>Builds the graph; weight initializers stay deferred until the model is written.</summary>
    public static GraphBuilder Build(LlamaConfig config, WeightSource weights) => Build(config, weights, CausalLmGraphOptions.Default);

    /// <summary>Builds the graph with <paramref name="options"/> (inputs_embeds input, constant attention prefix).</summary>
    public static GraphBuilder Build(LlamaConfig config, WeightSource weights, CausalLmGraphOptions options)
    {
        options.Prefix?.CheckFits(config.NumHiddenLayers, config.KeyValueHeads, config.HiddenSize / config.NumAttentionHeads);
        var graph = new LlamaGraph(config, weights, options);
        graph.Forward();
        return graph._g;
    }

    private void Forward()
    {
        var g = _g;
        _options.Declare(g, _config.NumHiddenLayers, _kvHeads, _headDim, _config.VocabSize, positionIds: _config.Family.TakesPositionIds, _hidden);

        string hidden;
        using (g.Scope("/model"))
        {
            hidden = _options.TakeInputsEmbeds
                ? CausalLmContract.InputsEmbeds
                : Layers.Embedding(g, _weights, "model.embed_tokens", CausalLmContract.InputIds);
            var (cos, sin) = Attention.RotaryCosSin(g, _options.PositionIds(g),
                Attention.RotaryInverseFrequencies(_headDim, _config.RopeTheta));
            var allowed = Attention.CausalPaddingMask(g, _options.Tokens, _options.AttentionMask(g));

            _prefixCache = _options.PrefixCache(g, _config.NumHiddenLayers);
            for (int i = 0; i < _config.NumHiddenLayers; i++) hidden = DecoderLayer(i, hidden, cos, sin, allowed);

            hidden = Layers.RmsNorm(g, _weights, "model.norm", hidden, _config.RmsNormEps);
        }

        hidden = CausalLmInterface.LastPositions(g, hidden);
        if (_arch.HeadIsTied)
        {
            using var _ = g.Scope("/lm_head");
            var batchSeq = g.Shape(hidden, 0, 2);
            if (_options.TakeInputsEmbeds) g.Initializer(_arch.WordEmbeddings, _weights.AsIs(_arch.WordEmbeddings));
            Layers.TiedHead(g, _weights, "/lm_head", _arch.WordEmbeddings, hidden, _hidden, _config.VocabSize, batchSeq, CausalLmContract.Logits);
        }
        else
        {
            Layers.Linear(g, _weights, _options.Lora, _arch.Linears[^1], hidden, output: CausalLmContract.Logits);
        }
    }

    /// <summary>LlamaDecoderLayer: input_layernorm -> self_attn (+ residual) -> post_attention_layernorm -> mlp (+ residual).</summary>
    private string DecoderLayer(int i, string hidden, string cos, string sin, string allowed)
    {
        var g = _g;
        var p = $"model.layers.{i}";
        var attnOutput = SelfAttention(i, Layers.RmsNorm(g, _weights, $"{p}.input_layernorm", hidden, _config.RmsNormEps), cos, sin, allowed);
        using (g.Scope(ModulePath.ToScope(p))) hidden = g.Add(hidden, attnOutput, name: "attn_residual/Add");

        var mlpOutput = Mlp(i, Layers.RmsNorm(g, _weights, $"{p}.post_attention_layernorm", hidden, _config.RmsNormEps));
        using (g.Scope(ModulePath.ToScope(p))) return g.Add(hidden, mlpOutput, name: "mlp_residual/Add");
    }

    /// <summary>
    /// LlamaAttention: q [B, heads, T, d], k and v [B, kv_heads, T, d]; rotary q and k; the cache stores k and v
    /// with kv_heads; repeat_kv for the product; scores / sqrt(head_dim), causal/padding mask, softmax, o_proj.
    /// </summary>
    private string SelfAttention(int i, string x, string cos, string sin, string allowed)
    {
        var g = _g;
        var p = $"model.layers.{i}.self_attn";
        using var _ = g.Scope(ModulePath.ToScope(p));

        var q = Attention.SplitHeads(g, Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.q_proj"), x), _heads, _headDim, "query");
        var k = Attention.SplitHeads(g, Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.k_proj"), x), _kvHeads, _headDim, "key");
        var v = Attention.SplitHeads(g, Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.v_proj"), x), _kvHeads, _headDim, "value");

        q = Attention.ApplyRotary(g, q, cos, sin, "query/rotary");
        k = Attention.ApplyRotary(g, k, cos, sin, "key/rotary");

        k = CausalLmGraphOptions.AppendToCache(g, _prefixCache, 2 * i, CausalLmContract.PastKey(i), k, CausalLmContract.PresentKey(i), "key/Concat");
        v = CausalLmGraphOptions.AppendToCache(g, _prefixCache, 2 * i + 1, CausalLmContract.PastValue(i), v, CausalLmContract.PresentValue(i), "value/Concat");

        long groups = _heads / _kvHeads;
        k = Attention.RepeatKv(g, k, _kvHeads, groups, _headDim, "key/repeat_kv");
        v = Attention.RepeatKv(g, v, _kvHeads, groups, _headDim, "value/repeat_kv");
        // beside the cache, the prefix's constants come repeated to the query heads already (and, as past keys, unrotated)
        var prefix = _options.PrefixConstants(g, i, _heads);

        var scores = Attention.Scores(g, q, k, prefix, s => g.Div(s, g.Constant((float)Math.Sqrt(_headDim))));
        var context = Attention.MaskedSoftmaxContext(g, scores, v, allowed, prefix);
        var merged = Attention.MergeHeads(g, context, (long)_heads * _headDim);
        return Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.o_proj"), merged);
    }

    /// <summary>LlamaMLP (SwiGLU): down_proj(act_fn(gate_proj(x)) * up_proj(x)).</summary>
    private string Mlp(int i, string x)
    {
        var g = _g;
        var p = $"model.layers.{i}.mlp";
        using var _ = g.Scope(ModulePath.ToScope(p));
        var gate = Layers.Activation(g, _config.HiddenAct, Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.gate_proj"), x), "act_fn");
        var up = Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.up_proj"), x);
        return Layers.Linear(g, _weights, _options.Lora, Linear($"{p}.down_proj"), g.Mul(gate, up));
    }

    private LinearSpec Linear(string path) => _arch.Linear(path);
}
