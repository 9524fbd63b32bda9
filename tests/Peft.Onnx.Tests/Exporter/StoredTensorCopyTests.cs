using System.Runtime.InteropServices;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Exporter.Weights;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// Large float32 checkpoint tensors written as they are stored are copied file to file into the data file: the bytes
/// land where the model says, equal to the checkpoint's values, and the data file is byte for byte the one the buffered
/// path writes.
/// </summary>
public class StoredTensorCopyTests
{
    /// <summary>Forwards everything but <see cref="WeightSource.StoredFloat32"/>, so every tensor goes through the write buffer.</summary>
    private sealed class Buffered(WeightSource inner) : WeightSource
    {
        public override bool Contains(string name) => inner.Contains(name);
        public override long[] Shape(string name) => inner.Shape(name);
        public override void Read(string name, long start, Span<float> destination) => inner.Read(name, start, destination);
        public override bool TryGetSpan(string name, long start, int count, out ReadOnlySpan<float> values) => inner.TryGetSpan(name, start, count, out values);
        public override void Release(string name) => inner.Release(name);
    }

    private static float[] Random(int count, int seed)
    {
        var rng = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
        return values;
    }

    // big: 4.2 MB and big2: 4.4 MB reach the file-copy size; the small ones go through the buffer between them
    private static readonly Dictionary<string, (long[] Shape, float[] Values)> Tensors = new()
    {
        ["a"] = ([3, 5], Random(15, 1)),
        ["big"] = ([1025, 1031], Random(1025 * 1031, 2)),
        ["b"] = ([333], Random(333, 3)),
        ["big2"] = ([1100, 1000], Random(1100 * 1000, 4)),
    };

    /// <summary>Every tensor as stored, big2 also transposed (computed, so buffered), in an order that mixes copies and buffers.</summary>
    private static GraphBuilder Graph(WeightSource weights)
    {
        var g = new GraphBuilder("stored");
        g.Initializer("a", weights.AsIs("a"));
        g.Initializer("big", weights.AsIs("big"));
        g.Initializer("big2_t", weights.Transposed("big2"));
        g.Initializer("b", weights.AsIs("b"));
        g.Initializer("big2", weights.AsIs("big2"));
        return g;
    }

    private static Dictionary<string, byte[]> ExternalBytes(string modelPath)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelPath));
        var data = File.ReadAllBytes(Path.Combine(Path.GetDirectoryName(modelPath)!, "model.onnx.data"));
        var result = new Dictionary<string, byte[]>();
        foreach (var t in model.Graph.Initializer)
        {
            if (t.DataLocation != TensorProto.Types.DataLocation.External)
            {
                result[t.Name] = t.RawData.ToByteArray();
                continue;
            }
            var kv = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
            result[t.Name] = data.AsSpan(int.Parse(kv["offset"]), int.Parse(kv["length"])).ToArray();
        }
        return result;
    }

    [Fact]
    public void Stored_float32_tensors_are_copied_into_the_data_file_as_the_buffered_path_writes_them()
    {
        var dir = Paths.TempDir("peft-onnx-stored-copy");
        try
        {
            var checkpoint = Path.Combine(dir, "ckpt");
            Directory.CreateDirectory(checkpoint);
            SafeTensorsWriter.Write(Path.Combine(checkpoint, CheckpointTensors.SingleFile),
                Tensors.Select(t => TensorData.FromFloat32(t.Key, t.Value.Shape, t.Value.Values)));
            using var tensors = CheckpointTensors.Open(checkpoint);
            var weights = new CheckpointWeights(tensors);

            // where the checkpoint says the values are, they are
            var file = File.ReadAllBytes(Path.Combine(checkpoint, CheckpointTensors.SingleFile));
            foreach (var (name, (_, values)) in Tensors)
            {
                var stored = weights.StoredFloat32(name)!;
                Assert.Equal(values.Length * 4L, stored.Length);
                Assert.Equal(MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), file.AsSpan((int)stored.Offset, (int)stored.Length).ToArray());
            }

            var copied = ModelWriter.Write(Graph(weights), Path.Combine(dir, "copied", "model.onnx"));
            var buffered = ModelWriter.Write(Graph(new Buffered(weights)), Path.Combine(dir, "buffered", "model.onnx"));
            Assert.Equal(File.ReadAllBytes(buffered.DataPath!), File.ReadAllBytes(copied.DataPath!));
            Assert.Equal(File.ReadAllBytes(buffered.ModelPath), File.ReadAllBytes(copied.ModelPath));

            var written = ExternalBytes(copied.ModelPath);
            foreach (var (name, (_, values)) in Tensors)
                Assert.Equal(MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), written[name]);
            var big2 = Tensors["big2"].Values;
            var transposed = new float[big2.Length];
            for (int r = 0; r < 1100; r++)
                for (int c = 0; c < 1000; c++) transposed[c * 1100 + r] = big2[r * 1000 + c];
            Assert.Equal(MemoryMarshal.AsBytes(transposed.AsSpan()).ToArray(), written["big2_t"]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Only_float32_tensors_report_where_they_are_stored()
    {
        var dir = Paths.TempDir("peft-onnx-stored-copy");
        try
        {
            SafeTensorsWriter.Write(Path.Combine(dir, CheckpointTensors.SingleFile),
            [
                TensorData.FromFloat32("f", [4], [1, 2, 3, 4]),
                new TensorData("h", DType.F16, [4], MemoryMarshal.AsBytes(new Half[] { (Half)1, (Half)2, (Half)3, (Half)4 }.AsSpan()).ToArray()),
            ]);
            using var tensors = CheckpointTensors.Open(dir);
            var weights = new CheckpointWeights(tensors);
            Assert.NotNull(weights.StoredFloat32("f"));
            Assert.Null(weights.StoredFloat32("h"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
