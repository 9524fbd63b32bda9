using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>model.onnx + external data layout, and that ONNX Runtime reads what we write.</summary>
public class ModelWriterTests
{
    private static readonly float[] W = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]; // [3, 4]
    private static readonly float[] B = [0.5f, -1, 2, 0];

    /// <summary>y = x @ W + b, with W and b as initializers.</summary>
    private static GraphBuilder Affine()
    {
        var g = new GraphBuilder("affine");
        var x = g.Input("x", ElementType.Float, Dims.Batch, 3);
        g.Output("y", ElementType.Float, Dims.Batch, 4);
        using (g.Scope("/layer"))
        {
            var w = g.Initializer("layer.weight", W, 3, 4);
            var b = g.Initializer("layer.bias", B, 4);
            g.Add(g.MatMul(x, w), b, output: "y");
        }
        return g;
    }

    private static float[] Run(InferenceSession session, float[] x)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(x, [x.Length / 3, 3]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["x"], [input], ["y"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static float[] Expected(float[] x)
    {
        var y = new float[x.Length / 3 * 4];
        for (int r = 0; r < x.Length / 3; r++)
            for (int c = 0; c < 4; c++)
            {
                float s = B[c];
                for (int k = 0; k < 3; k++) s += x[r * 3 + k] * W[k * 4 + c];
                y[r * 4 + c] = s;
            }
        return y;
    }

    [Fact]
    public void Forced_external_weights_load_in_ort_from_path_and_from_bytes()
    {
        var dir = Paths.TempDir("peft-onnx-writer");
        try
        {
            var path = Path.Combine(dir, "model.onnx");
            var result = ModelWriter.Write(Affine(), path, new ModelWriteOptions { InlineThreshold = 0 });
            Assert.Equal((0, 2), (result.InlineTensors, result.ExternalTensors));
            Assert.Equal(Path.Combine(dir, "model.onnx.data"), result.DataPath);

            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            Assert.Equal(8, model.IrVersion);
            Assert.Equal(17, model.OpsetImport.Single().Version);
            var dataLength = new FileInfo(result.DataPath!).Length;
            foreach (var t in model.Graph.Initializer)
            {
                Assert.Equal(TensorProto.Types.DataLocation.External, t.DataLocation);
                Assert.False(t.HasRawData);
                var kv = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
                Assert.Equal("model.onnx.data", kv["location"]);
                long offset = long.Parse(kv["offset"]), length = long.Parse(kv["length"]);
                Assert.Equal(0, offset % 64);
                Assert.True(offset + length <= dataLength);
            }

            float[] x = [1, 0, -1, 0.5f, 2, 3];
            using (var session = OrtSessions.Open(path)) Assert.Equal(Expected(x), Run(session, x));

            // from bytes: ORT needs the folder of the external data
            using (var session = OrtSessions.Open(File.ReadAllBytes(path), dir)) Assert.Equal(Expected(x), Run(session, x));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Small_tensors_stay_inline_and_large_ones_are_page_aligned()
    {
        var dir = Paths.TempDir("peft-onnx-writer");
        try
        {
            var g = new GraphBuilder();
            var x = g.Input("x", ElementType.Float, 5000);
            g.Output("y", ElementType.Float, 5000);
            var small = g.Initializer("small", new float[300], 300);             // 1200 bytes: external, 64-aligned
            var big = g.Initializer("big", InitializerData.DeferredFloats([5000], () => Enumerable.Range(0, 5000).Select(i => (float)i).ToArray()));
            var tiny = g.Constant(2f);                                             // 4 bytes: inline
            var s = g.Op("ReduceSum", [small], Attr.Int("keepdims", 0));
            g.Mul(g.Add(g.Mul(x, big), s), tiny, output: "y");
            var path = Path.Combine(dir, "model.onnx");
            var result = ModelWriter.Write(g, path);
            Assert.Equal((1, 2), (result.InlineTensors, result.ExternalTensors));

            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            var offsets = model.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External)
                .ToDictionary(t => t.Name, t => long.Parse(t.ExternalData.Single(e => e.Key == "offset").Value));
            Assert.Equal(0, offsets["small"]);
            Assert.Equal(4096, offsets["big"]);
            Assert.True(model.Graph.Initializer.Single(t => t.Name == tiny).HasRawData);

            using var session = OrtSessions.Open(path);
            using var input = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1f, 5000).ToArray(), [5000]);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, ["x"], [input], ["y"]);
            var y = outputs[0].GetTensorDataAsSpan<float>();
            Assert.Equal(2f * 4999, y[4999]);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Proto3_keeps_zero_valued_attributes_and_dims()
    {
        var g = new GraphBuilder();
        var x = g.Input("x", ElementType.Float, Dims.Batch, 0, 4);
        g.Output("y", ElementType.Float, 4);
        g.Node("ReduceSum", [x, g.Ints(0, 1)], outputs: ["y"], attributes: [Attr.Int("keepdims", 0)]);
        var dir = Paths.TempDir("peft-onnx-writer");
        try
        {
            var path = Path.Combine(dir, "m.onnx");
            ModelWriter.Write(g, path);
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            var dims = model.Graph.Input[0].Type.TensorType.Shape.Dim;
            Assert.Equal("batch_size", dims[0].DimParam);
            Assert.True(dims[1].HasDimValue);
            Assert.Equal(0, dims[1].DimValue);
            var attr = model.Graph.Node.Single().Attribute.Single();
            Assert.True(attr.HasI);
            Assert.Equal(AttributeProto.Types.AttributeType.Int, attr.Type);
            Assert.False(File.Exists(path + ".data"));
            using var session = OrtSessions.Open(path);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Deferred_tensor_with_wrong_length_is_refused()
    {
        var g = new GraphBuilder();
        var x = g.Input("x", ElementType.Float, 4);
        g.Output("y", ElementType.Float, 4);
        var w = g.Initializer("w", InitializerData.DeferredFloats([400], () => new float[399]));
        g.Add(x, g.Op("ReduceSum", [w]), output: "y");
        var dir = Paths.TempDir("peft-onnx-writer");
        try
        {
            Assert.Throws<InvalidOperationException>(() => ModelWriter.Write(g, Path.Combine(dir, "m.onnx")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
