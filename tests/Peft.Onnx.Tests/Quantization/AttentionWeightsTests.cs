using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Exporter.Weights;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Quantization;

/// <summary>
/// Which linear layers an int4 export keeps at int8 by default: every projection into and out of each family's
/// attention modules (fused or not, self- and cross-attention), never an MLP layer or the head by that rule.
/// </summary>
public class AttentionWeightsTests
{
    [Theory]
    [InlineData("bloom", "transformer.h.0.self_attention.query_key_value", "transformer.h.0.self_attention.dense")]
    [InlineData("gpt2", "transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj")]
    [InlineData("opt", "model.decoder.layers.0.self_attn.k_proj", "model.decoder.layers.0.self_attn.v_proj", "model.decoder.layers.0.self_attn.q_proj", "model.decoder.layers.0.self_attn.out_proj")]
    [InlineData("llama", "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj", "model.layers.0.self_attn.o_proj")]
    [InlineData("t5", "encoder.block.0.layer.0.SelfAttention.q", "encoder.block.0.layer.0.SelfAttention.k", "encoder.block.0.layer.0.SelfAttention.v", "encoder.block.0.layer.0.SelfAttention.o",
        "decoder.block.0.layer.0.SelfAttention.q", "decoder.block.0.layer.0.SelfAttention.k", "decoder.block.0.layer.0.SelfAttention.v", "decoder.block.0.layer.0.SelfAttention.o",
        "decoder.block.0.layer.1.EncDecAttention.q", "decoder.block.0.layer.1.EncDecAttention.k", "decoder.block.0.layer.1.EncDecAttention.v", "decoder.block.0.layer.1.EncDecAttention.o")]
    public void The_first_layer_s_attention_projections_are_the_attention_weights(string arch, params string[] attention)
    {
        var architecture = Architecture.For(ModelConfig.Load(Paths.Case(arch, "base_model")));
        var firstLayer = architecture.Linears.Where(l => new[] { ".h.0.", ".layers.0.", ".block.0." }.Any(f => l.Path.Contains(f, StringComparison.Ordinal))).ToList();
        Assert.Equal(attention.Order(), firstLayer.Where(l => architecture.IsAttentionWeight(l.WeightName)).Select(l => l.Path).Order());
        Assert.Contains(firstLayer, l => !architecture.IsAttentionWeight(l.WeightName));
        Assert.False(architecture.IsAttentionWeight(architecture.OutputHead));

        // an int4 export's default: attention and head at int8, the rest at int4, all at the export's block
        var weights = new QuantizingWeights(new EmptyWeights(), WeightQuantization.FromOptions("int4", 32, false, null, false, false, null)!, architecture);
        foreach (var l in architecture.Linears)
            Assert.Equal(new QuantizationFormat(l.WeightName == architecture.OutputHead || architecture.IsAttentionWeight(l.WeightName) ? 8 : 4, 32), weights.FormatOf(l.WeightName));
    }

    private sealed class EmptyWeights : WeightSource
    {
        public override bool Contains(string name) => false;
        public override long[] Shape(string name) => throw new KeyNotFoundException(name);
        public override void Read(string name, long start, Span<float> destination) => throw new KeyNotFoundException(name);
    }
}
