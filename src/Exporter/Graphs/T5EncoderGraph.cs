using Peft.Onnx.Core.Configs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;
using static Peft.Onnx.Exporter.Graphs.Seq2SeqInterface;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// encoder_model.onnx of a T5/mT5 export. Reads like T5Stack.forward for the encoder: shared embedding, the
/// bidirectional relative position bias of block 0 (computed once from the sequence length, shared by every
/// block) plus the padding mask, num_layers blocks (self-attention, feed-forward; pre-norm with residuals), the
/// final RMS norm -> last_hidden_state. Then, so the decoder never recomputes them, every decoder block's
/// EncDecAttention keys/values of last_hidden_state -> present.{i}.encoder.key|value.
/// </summary>
public sealed class T5EncoderGraph
{
    private readonly T5Config _config;
    private readonly WeightSource _weights;
    private readonly T5Layers _t5;
    private readonly GraphBuilder _g = new("t5_encoder");

    private T5EncoderGraph(T5Config config, WeightSource weights)
    {
        _config = config;
        _weights = weights;
        _t5 = new T5Layers(_g, config, weights);
    }

    public static GraphBuilder Build(T5Config config, WeightSource weights)
    {
        var graph = new T5EncoderGraph(config, weights);
        graph.Forward();
        return graph._g;
    }

    private void Forward()
    {
        var g = _g;
        DeclareEncoder(g, _config.DecoderLayers, _t5.Heads, _t5.HeadDim, _config.DModel);

        string hidden;
        using (g.Scope("/encoder"))
        {
            hidden = Layers.Embedding(g, _weights, "shared", InputIds);

            // position_bias = compute_bias(seq, seq) + extended mask, reused by every block.
            var seq = _t5.Dim(InputIds, 1);
            var positionBias = _t5.PositionBias("encoder.block.0.layer.0.SelfAttention", g.Constant(0L), seq, seq, bidirectional: true);
            var bias = g.Add(positionBias, _t5.ExtendedPaddingMask(AttentionMask), name: "position_bias/Add");

            for (int i = 0; i < _config.NumLayers; i++) hidden = Block(i, hidden, bias);
        }
        var lastHidden = _t5.LayerNorm("encoder.final_layer_norm", hidden, output: LastHiddenState);

        // The decoder's cross-attention keys/values depend only on the encoder output: compute them here, once.
        for (int i = 0; i < _config.DecoderLayers; i++)
        {
            var p = $"decoder.block.{i}.layer.1.EncDecAttention";
            using var _ = g.Scope(ModulePath.ToScope(p));
            _t5.SplitHeads(_t5.Project($"{p}.k", lastHidden), output: PresentCrossKey(i));
            _t5.SplitHeads(_t5.Project($"{p}.v", lastHidden), output: PresentCrossValue(i));
        }
    }

    /// <summary>T5Block (encoder): T5LayerSelfAttention then T5LayerFF, each pre-norm with a residual.</summary>
    private string Block(int i, string hidden, string bias)
    {
        var g = _g;
        var p = $"encoder.block.{i}";
        var normed = _t5.LayerNorm($"{p}.layer.0.layer_norm", hidden);
        string attention;
        var a = $"{p}.layer.0.SelfAttention";
        using (g.Scope(ModulePath.ToScope(a)))
        {
            var q = _t5.SplitHeads(_t5.Project($"{a}.q", normed));
            var k = _t5.SplitHeads(_t5.Project($"{a}.k", normed));
            var v = _t5.SplitHeads(_t5.Project($"{a}.v", normed));
            attention = _t5.Attend(a, q, k, v, bias);
            hidden = g.Add(hidden, attention, name: "residual/Add");
        }
        return _t5.FeedForward($"{p}.layer.1", hidden);
    }
}
