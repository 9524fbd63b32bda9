using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>
/// T5ForConditionalGeneration's (and MT5ForConditionalGeneration's) state dict: one shared embedding, an encoder
/// and a decoder stack of pre-norm blocks without biases, the relative position table only in block 0 of each
/// stack, and an output head tied to the shared embedding for t5 (untied for mt5 unless the config says).
/// </summary>
public sealed class T5Architecture : Architecture
{
    public T5Architecture(T5Config config)
    {
        Config = config;
        T5 = config;
        long d = config.DModel, inner = (long)config.NumHeads * config.DKv, ff = config.DFf, v = config.VocabSize;

        // named_modules() order: encoder blocks, then decoder blocks, lm_head last.
        var linears = new List<LinearSpec>();
        void Attention(string p)
        {
            linears.Add(new($"{p}.q", d, inner, false));
            linears.Add(new($"{p}.k", d, inner, false));
            linears.Add(new($"{p}.v", d, inner, false));
            linears.Add(new($"{p}.o", inner, d, false));
        }
        void FeedForward(string p)
        {
            if (config.IsGatedAct)
            {
                linears.Add(new($"{p}.DenseReluDense.wi_0", d, ff, false));
                linears.Add(new($"{p}.DenseReluDense.wi_1", d, ff, false));
            }
            else linears.Add(new($"{p}.DenseReluDense.wi", d, ff, false));
            linears.Add(new($"{p}.DenseReluDense.wo", ff, d, false));
        }
        for (int i = 0; i < config.NumLayers; i++)
        {
            Attention($"encoder.block.{i}.layer.0.SelfAttention");
            FeedForward($"encoder.block.{i}.layer.1");
        }
        for (int i = 0; i < config.DecoderLayers; i++)
        {
            Attention($"decoder.block.{i}.layer.0.SelfAttention");
            Attention($"decoder.block.{i}.layer.1.EncDecAttention");
            FeedForward($"decoder.block.{i}.layer.2");
        }
        linears.Add(new("lm_head", d, v, false));
        Linears = linears;

        // named_parameters() order: within a block the linears come before the layer's norm.
        var byPath = linears.ToDictionary(l => l.Path);
        var ps = new List<ParameterSpec> { new("shared.weight", [v, d]) };
        void AttentionLayer(string layer, string module, bool relativeBias)
        {
            foreach (var name in new[] { "q", "k", "v", "o" })
                ps.AddRange(BloomArchitecture.LinearParameters(byPath[$"{layer}.{module}.{name}"]));
            if (relativeBias) ps.Add(new($"{layer}.{module}.relative_attention_bias.weight", [config.RelativeAttentionNumBuckets, config.NumHeads]));
            ps.Add(new($"{layer}.layer_norm.weight", [d]));
        }
        void FeedForwardLayer(string layer)
        {
            foreach (var name in config.IsGatedAct ? new[] { "wi_0", "wi_1", "wo" } : ["wi", "wo"])
                ps.AddRange(BloomArchitecture.LinearParameters(byPath[$"{layer}.DenseReluDense.{name}"]));
            ps.Add(new($"{layer}.layer_norm.weight", [d]));
        }
        for (int i = 0; i < config.NumLayers; i++)
        {
            AttentionLayer($"encoder.block.{i}.layer.0", "SelfAttention", i == 0);
            FeedForwardLayer($"encoder.block.{i}.layer.1");
        }
        ps.Add(new("encoder.final_layer_norm.weight", [d]));
        for (int i = 0; i < config.DecoderLayers; i++)
        {
            AttentionLayer($"decoder.block.{i}.layer.0", "SelfAttention", i == 0);
            AttentionLayer($"decoder.block.{i}.layer.1", "EncDecAttention", false);
            FeedForwardLayer($"decoder.block.{i}.layer.2");
        }
        ps.Add(new("decoder.final_layer_norm.weight", [d]));
        if (!config.TiesWordEmbeddings) ps.Add(new("lm_head.weight", [v, d]));
        Parameters = ps;
    }

    public override ModelConfig Config { get; }

    /// <summary>The config with its T5 type (head sizes, buckets, feed-forward kind).</summary>
    public T5Config T5 { get; }

    public override string ClassName => T5 is MT5Config ? "MT5ForConditionalGeneration" : "T5ForConditionalGeneration";
    public override IReadOnlyList<ParameterSpec> Parameters { get; }
    public override IReadOnlyList<LinearSpec> Linears { get; }
    public override string WordEmbeddings => "shared.weight";

    /// <summary>
    /// Some checkpoints also store the stacks' embed_tokens (transformers ties them to shared), and old ones a
    /// relative_attention_bias on the first cross-attention (transformers' _keys_to_ignore_on_load_unexpected).
    /// </summary>
    public override bool IsIgnoredOnLoad(string name) =>
        name is "encoder.embed_tokens.weight" or "decoder.embed_tokens.weight"
            or "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight";
}
