namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// Typed single-output helpers for the opset-17 operators the graphs use. Each node is named after its op
/// type in the builder's current scope unless <c>name</c> is given; <c>output</c> names the result
/// explicitly (graph outputs such as "logits" or "present.0.key").
/// </summary>
public static class Ops
{
    public static string MatMul(this GraphBuilder g, string a, string b, string? name = null, string? output = null) =>
        One(g, "MatMul", [a, b], name, output);

    public static string Add(this GraphBuilder g, string a, string b, string? name = null, string? output = null) =>
        One(g, "Add", [a, b], name, output);

    public static string Sub(this GraphBuilder g, string a, string b, string? name = null, string? output = null) =>
        One(g, "Sub", [a, b], name, output);

    public static string Mul(this GraphBuilder g, string a, string b, string? name = null, string? output = null) =>
        One(g, "Mul", [a, b], name, output);

    public static string Div(this GraphBuilder g, string a, string b, string? name = null, string? output = null) =>
        One(g, "Div", [a, b], name, output);

    public static string Tanh(this GraphBuilder g, string x, string? name = null) => One(g, "Tanh", [x], name, null);

    public static string And(this GraphBuilder g, string a, string b, string? name = null) => One(g, "And", [a, b], name, null);

    public static string LessOrEqual(this GraphBuilder g, string a, string b, string? name = null) => One(g, "LessOrEqual", [a, b], name, null);

    public static string Where(this GraphBuilder g, string condition, string x, string y, string? name = null) =>
        One(g, "Where", [condition, x, y], name, null);

    public static string Cast(this GraphBuilder g, string x, ElementType to, string? name = null) =>
        One(g, "Cast", [x], name, null, Attr.Int("to", (long)to));

    /// <summary>Reshape to a constant shape (0 copies the input's dimension, -1 is inferred).</summary>
    public static string Reshape(this GraphBuilder g, string x, long[] shape, string? name = null, string? output = null) =>
        One(g, "Reshape", [x, g.Ints(shape)], name, output);

    /// <summary>Reshape to a shape computed in the graph (a 1-D int64 value).</summary>
    public static string Reshape(this GraphBuilder g, string x, string shape, string? name = null, string? output = null) =>
        One(g, "Reshape", [x, shape], name, output);

    public static string Transpose(this GraphBuilder g, string x, long[] perm, string? name = null) =>
        One(g, "Transpose", [x], name, null, Attr.Ints("perm", perm));

    public static string Unsqueeze(this GraphBuilder g, string x, long[] axes, string? name = null) =>
        One(g, "Unsqueeze", [x, g.Ints(axes)], name, null);

    public static string Squeeze(this GraphBuilder g, string x, long[] axes, string? name = null) =>
        One(g, "Squeeze", [x, g.Ints(axes)], name, null);

    public static string Concat(this GraphBuilder g, long axis, IReadOnlyList<string> inputs, string? name = null, string? output = null) =>
        One(g, "Concat", inputs, name, output, Attr.Int("axis", axis));

    /// <summary>Splits <paramref name="x"/> into <paramref name="parts"/> equal pieces along <paramref name="axis"/>.</summary>
    public static IReadOnlyList<string> Split(this GraphBuilder g, string x, long axis, int parts, string? name = null) =>
        g.Node("Split", [x], outputCount: parts, name: name, attributes: [Attr.Int("axis", axis)]);

    public static string Softmax(this GraphBuilder g, string x, long axis = -1, string? name = null) =>
        One(g, "Softmax", [x], name, null, Attr.Int("axis", axis));

    public static string Gather(this GraphBuilder g, string data, string indices, long axis = 0, string? name = null) =>
        One(g, "Gather", [data, indices], name, null, Attr.Int("axis", axis));

    /// <summary>Shape of <paramref name="x"/>, optionally the slice [start, end) of its dimensions (int64, 1-D).</summary>
    public static string Shape(this GraphBuilder g, string x, long? start = null, long? end = null, string? name = null)
    {
        var attrs = new List<Proto.AttributeProto>();
        if (start != null) attrs.Add(Attr.Int("start", start.Value));
        if (end != null) attrs.Add(Attr.Int("end", end.Value));
        return One(g, "Shape", [x], name, null, [.. attrs]);
    }

    public static string CumSum(this GraphBuilder g, string x, long axis, string? name = null) =>
        One(g, "CumSum", [x, g.Constant(axis)], name, null);

    /// <summary>Range(start, limit, delta) over scalars.</summary>
    public static string Range(this GraphBuilder g, string start, string limit, string delta, string? name = null) =>
        One(g, "Range", [start, limit, delta], name, null);

    public static string LayerNormalization(this GraphBuilder g, string x, string scale, string bias, float epsilon, long axis = -1, string? name = null) =>
        One(g, "LayerNormalization", [x, scale, bias], name, null, Attr.Int("axis", axis), Attr.Float("epsilon", epsilon));

    /// <summary>Gemm: alpha * A' @ B' + beta * C over 2-D inputs (C optional: pass null).</summary>
    public static string Gemm(this GraphBuilder g, string a, string b, string? c = null, bool transA = false, bool transB = false, string? name = null, string? output = null)
    {
        var attrs = new List<Proto.AttributeProto>();
        if (transA) attrs.Add(Attr.Int("transA", 1));
        if (transB) attrs.Add(Attr.Int("transB", 1));
        return One(g, "Gemm", c == null ? [a, b] : [a, b, c], name, output, [.. attrs]);
    }

    private static string One(GraphBuilder g, string opType, IReadOnlyList<string> inputs, string? name, string? output, params Proto.AttributeProto[] attributes) =>
        g.Node(opType, inputs, outputs: output == null ? null : [output], name: name, attributes: attributes)[0];
}
