using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;
using static Peft.Onnx.Core.Onnx.Seq2SeqContract;
using static Peft.Onnx.Exporter.Graphs.Seq2SeqInterface;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// decoder_model.onnx of a T5/mT5 export, one graph for the first step (past length 0) and later steps. Reads like
/// T5Stack.forward for the decoder followed by the head of T5ForConditionalGeneration: shared embedding; the
/// unidirectional relative position bias of block 0 for query positions past .. past + T - 1
/// (compute_bias(past + T, past + T) sliced to its last T rows) plus the causal mask; num_decoder_layers blocks
/// (self-attention appending to the cache, cross-attention on the encoder's precomputed keys/values with the
/// encoder mask and no position bias, feed-forward); final RMS norm; d_model^-0.5 rescale when the head is tied
/// to the shared embedding (t5), none for an untied lm_head (mT5); lm_head -> logits.
/// </summary>
public sealed class T5DecoderGraph
{
    private readonly T5Config _config;
    private readonly WeightSource _weights;
    private readonly T5Layers _t5;
    private readonly GraphBuilder _g = new("t5_decoder");
    private readonly Seq2SeqGraphOptions _options;

    private T5DecoderGraph(T5Config config, WeightSource weights, Seq2SeqGraphOptions options)
    {
        _options = options;
        _config = config;
        _weights = weights;
        _t5 = new T5Layers(_g, config, weights, options.Lora);
    }

    public static GraphBuilder Build(T5Config config, WeightSource weights) => Build(config, weights, Seq2SeqGraphOptions.Default);

    /// <summary>
    /// With a decoder prefix: its constant keys/values come before every self-attention's keys/values and count as
    /// past for positions (relative position bias for queries prefix + past ..). With an encoder soft prompt: the
    /// encoder mask gets the prompt's ones in front (the cross keys/values are prompt + input long).
    /// </summary>
    public static GraphBuilder Build(T5Config config, WeightSource weights, Seq2SeqGraphOptions options)
    {
        var graph = new T5DecoderGraph(config, weights, options);
        graph.Forward();
        return graph._g;
    }

    private void Forward()
    {
        var g = _g;
        DeclareDecoder(g, _config.DecoderLayers, _t5.Heads, _t5.HeadDim, _config.VocabSize, _options.CrossSequence);
        _options.DeclareAdapterIndex(g);

        string hidden;
        using (g.Scope("/decoder"))
        {
            hidden = Layers.Embedding(g, _weights, "shared", InputIds);

            string selfBias, crossBias;
            using (g.Scope("position_bias"))
            {
                var past = _t5.Dim(PastSelfKey(0), 2);
                if (_options.DecoderPrefix != null) past = g.Add(past, g.Constant((long)_options.DecoderPrefix.Length), name: "prompt/Add");
                if (_options.DecoderPrefixes != null) past = g.Add(past, g.Constant((long)_options.DecoderPrefixes.MaxLength), name: "prompt/Add");
                var total = g.Add(past, _t5.Dim(InputIds, 1));
                var positionBias = _t5.PositionBias("decoder.block.0.layer.0.SelfAttention", past, total, total, bidirectional: false);
                selfBias = g.Add(positionBias, CausalMask(past, total));
                if (_options.DecoderPrefixes != null) selfBias = g.Add(selfBias, PrefixPadding(_options.DecoderPrefixes, total), name: "prompt/padding/Add");
                // Cross-attention: a zero position bias plus the encoder's extended mask, i.e. the mask alone.
                crossBias = _t5.ExtendedPaddingMask(_options.PromptedMask(g, EncoderAttentionMask));
            }

            for (int i = 0; i < _config.DecoderLayers; i++) hidden = Block(i, hidden, selfBias, crossBias);
        }
        hidden = _t5.LayerNorm("decoder.final_layer_norm", hidden);

        if (_t5.Architecture.HeadIsTied)
        {
            using var _ = g.Scope("/lm_head");
            // Mesh TensorFlow rescales before the projection tied to the embedding.
            hidden = g.Mul(hidden, g.Constant((float)Math.Pow(_config.DModel, -0.5)), name: "rescale/Mul");
            Layers.TiedHead(g, _weights, "/lm_head", "shared.weight", hidden, _config.DModel, _config.VocabSize, g.Shape(InputIds), Logits);
        }
        else
        {
            Layers.Linear(g, _weights, _options.Lora, _t5.Linear("lm_head"), hidden, output: Logits);
        }
    }

    /// <summary>
    /// The decoder's extended mask as transformers builds it for an all-ones decoder mask: key j is visible to the
    /// query at position past + i when j &lt;= past + i (every cached position is visible); (1 - allowed) * finfo.min,
    /// float [T, past + T] (broadcast over batch and heads).
    /// </summary>
    private string CausalMask(string past, string total)
    {
        var g = _g;
        using var _ = g.Scope("causal_mask");
        var one = g.Constant(1L);
        var queries = g.Unsqueeze(g.Range(past, total, one), [1]);
        var keys = g.Unsqueeze(g.Range(g.Constant(0L), total, one), [0]);
        var allowed = g.Cast(g.LessOrEqual(keys, queries), ElementType.Float);
        return g.Mul(g.Sub(g.Constant(1f), allowed), g.Constant(float.MinValue));
    }

    /// <summary>
    /// Per-row prefixes: each row's padding in front of its prefix masked, float [batch, 1, 1, total] ((1 - mask) *
    /// finfo.min over the prefix block, 0 over the real tokens).
    /// </summary>
    private string PrefixPadding(PrefixStack prefixes, string total)
    {
        var g = _g;
        using var _ = g.Scope("prompt_padding");
        var prefixBias = _t5.ExtendedPaddingMask(prefixes.RowMask(g));                                     // [batch, 1, 1, MaxLength]
        var real = g.Unsqueeze(g.Sub(total, g.Constant((long)prefixes.MaxLength)), [0]);
        return g.Op("Pad", [prefixBias, g.Concat(0, [g.Ints(0, 0, 0, 0, 0, 0, 0), real]), g.Constant(0f)]);
    }

    /// <summary>T5Block (decoder): self-attention with cache, cross-attention, feed-forward; each pre-norm with a residual.</summary>
    private string Block(int i, string hidden, string selfBias, string crossBias)
    {
        var g = _g;
        var p = $"decoder.block.{i}";

        var normed = _t5.LayerNorm($"{p}.layer.0.layer_norm", hidden);
        var a = $"{p}.layer.0.SelfAttention";
        using (g.Scope(ModulePath.ToScope(a)))
        {
            var q = _t5.SplitHeads(_t5.Project($"{a}.q", normed));
            var k = _t5.SplitHeads(_t5.Project($"{a}.k", normed));
            var v = _t5.SplitHeads(_t5.Project($"{a}.v", normed));
            k = Attention.AppendToCache(g, PastSelfKey(i), k, PresentSelfKey(i), "key/Concat");
            v = Attention.AppendToCache(g, PastSelfValue(i), v, PresentSelfValue(i), "value/Concat");
            var prefix = _options.DecoderPrefix?.Constants(g, i, _t5.Heads) ?? _options.DecoderPrefixes?.Constants(g, i, _t5.Heads);
            hidden = g.Add(hidden, _t5.Attend(a, q, k, v, selfBias, prefix), name: "residual/Add");
        }

        normed = _t5.LayerNorm($"{p}.layer.1.layer_norm", hidden);
        var c = $"{p}.layer.1.EncDecAttention";
        using (g.Scope(ModulePath.ToScope(c)))
        {
            var q = _t5.SplitHeads(_t5.Project($"{c}.q", normed));
            hidden = g.Add(hidden, _t5.Attend(c, q, PastCrossKey(i), PastCrossValue(i), crossBias), name: "residual/Add");
        }

        return _t5.FeedForward($"{p}.layer.2", hidden);
    }
}
