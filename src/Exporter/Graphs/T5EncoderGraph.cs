using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;
using static Peft.Onnx.Core.Onnx.Seq2SeqContract;
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
    private readonly Seq2SeqGraphOptions _options;

    private T5EncoderGraph(T5Config config, WeightSource weights, Seq2SeqGraphOptions options)
    {
        _options = options;
        _config = config;
        _weights = weights;
        _t5 = new T5Layers(_g, config, weights, options.Lora);
    }

    public static GraphBuilder Build(T5Config config, WeightSource weights) => Build(config, weights, Seq2SeqGraphOptions.Default);

    /// <summary>
    /// With an encoder soft prompt: its constant embeddings come before the input's (mask extended with ones), so the
    /// outputs are prompt + input long. With a decoder prefix: the cross keys/values follow transformers' use of the
    /// prefix's cross part (<see cref="AttentionPrefix.SelectCross"/>).
    /// </summary>
    public static GraphBuilder Build(T5Config config, WeightSource weights, Seq2SeqGraphOptions options)
    {
        var graph = new T5EncoderGraph(config, weights, options);
        graph.Forward();
        return graph._g;
    }

    private void Forward()
    {
        var g = _g;
        DeclareEncoder(g, _config.DecoderLayers, _t5.Heads, _t5.HeadDim, _config.DModel, _options.CrossSequence);
        _options.DeclareAdapterIndex(g);

        string hidden;
        using (g.Scope("/encoder"))
        {
            hidden = Layers.Embedding(g, _weights, "shared", InputIds);
            var mask = AttentionMask;
            if (_options.HasEncoderPrompt)
            {
                // PEFT: inputs_embeds = cat(prompts, word_embeddings(input_ids)), attention_mask = cat(ones, mask)
                using var _ = g.Scope("prompt");
                int n = _options.EncoderPromptLength;
                var prompt = g.Initializer("prompt.embeddings", InitializerData.FromFloats(_options.EncoderPrompt, 1, n, _config.DModel));
                var shape = g.Concat(0, [g.Shape(InputIds, 0, 1), g.Ints(n, _config.DModel)]);
                hidden = g.Concat(1, [g.Op("Expand", [prompt, shape]), hidden]);
                mask = _options.PromptedMask(g, AttentionMask);
            }
            else if (_options.EncoderPrompts != null)
            {
                using var _ = g.Scope("prompt");
                hidden = _options.EncoderPrompts.Prepend(g, hidden, InputIds);
                mask = _options.PromptedMask(g, AttentionMask);
            }

            // position_bias = compute_bias(seq, seq) + extended mask, reused by every block.
            var seq = _t5.Dim(_options.PrependsEncoderPrompt ? mask : InputIds, 1);
            var positionBias = _t5.PositionBias("encoder.block.0.layer.0.SelfAttention", g.Constant(0L), seq, seq, bidirectional: true);
            var bias = g.Add(positionBias, _t5.ExtendedPaddingMask(mask), name: "position_bias/Add");

            for (int i = 0; i < _config.NumLayers; i++) hidden = Block(i, hidden, bias);
        }
        var lastHidden = _t5.LayerNorm("encoder.final_layer_norm", hidden, output: LastHiddenState);

        // The decoder's cross-attention keys/values depend only on the encoder output: compute them here, once.
        for (int i = 0; i < _config.DecoderLayers; i++)
        {
            var p = $"decoder.block.{i}.layer.1.EncDecAttention";
            using var _ = g.Scope(ModulePath.ToScope(p));
            var prefix = _options.DecoderPrefix;
            if (_options.DecoderPrefixes is { HasCross: true } stack)
            {
                int promptLength = _options.EncoderPrompts?.MaxLength ?? 0;
                var sk = stack.SelectCross(g, i, _t5.SplitHeads(_t5.Project($"{p}.k", lastHidden)), value: false, AttentionMask, promptLength);
                var sv = stack.SelectCross(g, i, _t5.SplitHeads(_t5.Project($"{p}.v", lastHidden)), value: true, AttentionMask, promptLength);
                g.Node("Identity", [sk], outputs: [PresentCrossKey(i)], name: "key/Identity");
                g.Node("Identity", [sv], outputs: [PresentCrossValue(i)], name: "value/Identity");
                continue;
            }
            if (prefix?.CrossKeys == null)
            {
                _t5.SplitHeads(_t5.Project($"{p}.k", lastHidden), output: PresentCrossKey(i));
                _t5.SplitHeads(_t5.Project($"{p}.v", lastHidden), output: PresentCrossValue(i));
                continue;
            }
            var k = prefix.SelectCross(g, i, _t5.SplitHeads(_t5.Project($"{p}.k", lastHidden)), value: false);
            var v = prefix.SelectCross(g, i, _t5.SplitHeads(_t5.Project($"{p}.v", lastHidden)), value: true);
            g.Node("Identity", [k], outputs: [PresentCrossKey(i)], name: "key/Identity");
            g.Node("Identity", [v], outputs: [PresentCrossValue(i)], name: "value/Identity");
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
