using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

public class GraphBuilderTests
{
    [Fact]
    public void Constants_are_deduplicated_by_type_shape_and_value()
    {
        var g = new GraphBuilder();
        var a = g.Ints(0, 0, 4);
        Assert.Equal(a, g.Ints(0, 0, 4));
        Assert.NotEqual(a, g.Ints(0, 0, 5));
        Assert.NotEqual(g.Constant(1L), g.Ints(1));      // rank 0 vs rank 1
        Assert.NotEqual(g.Constant(1f), g.Constant(1L)); // float vs int64
        Assert.Equal(g.Constant(0.5f), g.Constant(0.5f));
        Assert.Equal(6, g.Initializers.Count);
    }

    [Fact]
    public void Nodes_are_named_by_scope_and_kept_unique()
    {
        var g = new GraphBuilder();
        var x = g.Input("x", ElementType.Float, Dims.Batch, 4);
        string y;
        using (g.Scope("/transformer"))
        using (g.Scope("h.0"))
        {
            y = g.Add(x, x);
            y = g.Add(y, x);
            using (g.Scope("/lm_head")) y = g.Mul(y, x);
            y = g.Tanh(y);
        }
        Assert.Equal(["/transformer/h.0/Add", "/transformer/h.0/Add_1", "/lm_head/Mul", "/transformer/h.0/Tanh"], g.Nodes.Select(n => n.Name));
        Assert.Equal("/transformer/h.0/Tanh/output_0", y);
        Assert.Equal("", g.CurrentScope);
    }

    [Fact]
    public void Undefined_inputs_duplicate_values_and_missing_outputs_are_refused()
    {
        var g = new GraphBuilder();
        var x = g.Input("x", ElementType.Float, 4);
        Assert.Throws<InvalidOperationException>(() => g.Add(x, "nowhere"));
        Assert.Throws<InvalidOperationException>(() => g.Input("x", ElementType.Float, 4));
        g.Output("y", ElementType.Float, 4);
        Assert.Throws<InvalidOperationException>(() => g.Validate());
        g.Tanh(x);
        Assert.Throws<InvalidOperationException>(() => g.Validate());
    }

    [Theory]
    [InlineData("transformer.h.0.self_attention.query_key_value", "/transformer/h.0/self_attention/query_key_value")]
    [InlineData("lm_head", "/lm_head")]
    [InlineData("model.layers.12.mlp.down_proj", "/model/layers.12/mlp/down_proj")]
    public void Module_paths_become_node_scopes(string module, string scope) => Assert.Equal(scope, ModulePath.ToScope(module));

    [Fact]
    public void Alibi_slopes_follow_build_alibi_tensor()
    {
        Assert.Equal([0.25f, 0.0625f, 0.015625f, 0.00390625f], Attention.AlibiSlopes(4));
        // not a power of two: 4 slopes of base 2^-2, then every other power of 2^-1
        Assert.Equal([0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.5f, 0.125f], Attention.AlibiSlopes(6));
        Assert.Equal(Enumerable.Range(1, 8).Select(p => MathF.Pow(0.5f, p)), Attention.AlibiSlopes(8));
    }
}
