using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// BLOOM, GPT-2 and OPT run attention as one com.microsoft MultiHeadAttention node per layer that appends to the
/// cache itself, fed one mask bias built once (ALiBi folded in for BLOOM); LLaMA (rotary, grouped-query heads) spells
/// it out. The logits of these graphs are judged against transformers by each family's export tests.
/// </summary>
public class FusedAttentionGraphTests
{
    [Theory]
    [InlineData("bloom", true)]
    [InlineData("gpt2", true)]
    [InlineData("opt", true)]
    [InlineData("llama", false)]
    public void Attention_is_one_multi_head_attention_node_per_layer_sharing_one_mask_bias(string arch, bool fused)
    {
        var model = Paths.Case(arch, "base_model");
        var dir = TempExports.Base(model);
        try
        {
            var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, CausalLmContract.ModelFile))).Graph;
            var d = ModelConfig.Load(model).Dimensions;
            var attention = graph.Node.Where(n => n.OpType == "MultiHeadAttention").ToList();
            Assert.Equal(fused ? d.NumLayers : 0, attention.Count);
            Assert.Equal(fused ? 0 : d.NumLayers, graph.Node.Count(n => n.OpType == "Softmax"));
            if (!fused) return;
            for (int i = 0; i < attention.Count; i++)
            {
                var node = attention[i];
                Assert.Equal("com.microsoft", node.Domain);
                Assert.Equal(d.NumHeads, node.Attribute.Single(a => a.Name == "num_heads").I);
                // OPT scales the query before the product, as OPTAttention does
                Assert.Equal(arch == "opt" ? 1f : 1 / MathF.Sqrt(d.HeadDim), node.Attribute.Single(a => a.Name == "scale").F);
                Assert.Equal([CausalLmContract.PastKey(i), CausalLmContract.PastValue(i)], node.Input.Skip(6));
                Assert.Equal([CausalLmContract.PresentKey(i), CausalLmContract.PresentValue(i)], node.Output.Skip(1));
            }
            Assert.DoesNotContain(graph.Node, n => n.OpType == "Concat" && n.Output.Any(o => o.StartsWith("present.", StringComparison.Ordinal)));
            // one bias for every layer: the bias (BLOOM's ALiBi, else 0) where the causal/padding mask allows, float.MinValue elsewhere
            var bias = Assert.Single(attention.Select(n => n.Input[5]).Distinct());
            var where = graph.Node.Single(n => n.Output.Contains(bias));
            Assert.Equal("Where", where.OpType);
            Assert.Contains(graph.Node, n => n.Output.Contains(where.Input[0]) && n.Name.Contains("/causal_mask/", StringComparison.Ordinal));
            Assert.Equal(arch == "bloom", graph.Node.Any(n => n.Output.Contains(where.Input[1]) && n.Name.Contains("/alibi/", StringComparison.Ordinal)));
        }
        finally { Directory.Delete(dir, true); }
    }
}
