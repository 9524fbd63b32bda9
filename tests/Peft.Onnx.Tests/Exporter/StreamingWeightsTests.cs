using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Exporter.Weights;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// The streaming weight pipeline: whatever ranges the writer asks for, transposes, merges and fp16 conversion give the
/// same values, bit for bit, as computing the whole tensor at once; the data file holds exactly those bytes.
/// </summary>
public class StreamingWeightsTests
{
    /// <summary>A source over in-memory tensors; <paramref name="mapped"/>: hands out spans as a memory-mapped F32 checkpoint does.</summary>
    private sealed class ArraySource(Dictionary<string, (long[] Shape, float[] Values)> tensors, bool mapped) : WeightSource
    {
        public List<string> Released { get; } = [];
        public override bool Contains(string name) => tensors.ContainsKey(name);
        public override long[] Shape(string name) => tensors[name].Shape;
        public override void Read(string name, long start, Span<float> destination) => tensors[name].Values.AsSpan((int)start, destination.Length).CopyTo(destination);
        public override void Release(string name) => Released.Add(name);

        public override bool TryGetSpan(string name, long start, int count, out ReadOnlySpan<float> values)
        {
            values = mapped ? tensors[name].Values.AsSpan((int)start, count) : default;
            return mapped;
        }
    }

    private static float[] Random(int count, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    /// <summary>The values of a streamed initializer read back in ranges of <paramref name="chunk"/> elements.</summary>
    private static float[] ReadInChunks(FloatValues values, int chunk)
    {
        var result = new float[values.Count];
        for (long start = 0; start < values.Count; start += chunk)
            values.Read(start, result.AsSpan((int)start, (int)Math.Min(chunk, values.Count - start)));
        values.Release();
        return result;
    }

    [Theory]
    [InlineData(37, 1003, false)]
    [InlineData(1003, 37, true)]
    [InlineData(600, 520, true)]    // large enough to be split across cores
    [InlineData(64, 64, false)]
    public void Transposed_ranges_equal_the_whole_transpose(int rows, int cols, bool mapped)
    {
        var w = Random(rows * cols, rows + cols);
        var source = new ArraySource(new() { ["w"] = ([rows, cols], w) }, mapped);
        var expected = new float[w.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) expected[c * rows + r] = w[r * cols + c];

        foreach (var chunk in new[] { 1 << 20, rows, 999, 7 })
        {
            var data = source.Transposed("w");
            Assert.Equal([cols, rows], data.Dims);
            Assert.Equal(expected, ReadInChunks(data.Values!, chunk));
        }
        Assert.Equal(4, source.Released.Count(n => n == "w"));
    }

    /// <summary>PEFT's merge written plainly, element by element: float32 sums over the rank in order, each term a fused multiply-add, times the scaling.</summary>
    private static float[] ReferenceMerge(float[] w, float[] a, float[] b, int rank, int inF, int outF, double scaling, bool conv1D)
    {
        var merged = (float[])w.Clone();
        for (int o = 0; o < outF; o++)
            for (int i = 0; i < inF; i++)
            {
                float delta = 0;
                for (int k = 0; k < rank; k++) delta = MathF.FusedMultiplyAdd(b[o * rank + k], a[k * inF + i], delta);
                merged[conv1D ? i * outF + o : o * inF + i] += delta * (float)scaling;
            }
        return merged;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Lora_delta_over_any_ranges_equals_the_whole_merge_bit_for_bit(bool conv1D)
    {
        const int inF = 67, outF = 45, rank = 3;
        const double scaling = 16.0 / 3;
        var w = Random(inF * outF, 1);
        var a = Random(rank * inF, 2, 0.1f);
        var b = Random(outF * rank, 3, 0.1f);
        b[4] = 0; // a zero B entry is skipped as PEFT's sum would add nothing
        var expected = ReferenceMerge(w, a, b, rank, inF, outF, scaling, conv1D);
        var delta = new LoraDelta(a, b, rank, inF, outF, scaling, conv1D);
        foreach (var chunk in new[] { w.Length, 100, 13, 1 })
        {
            var merged = (float[])w.Clone();
            for (int start = 0; start < merged.Length; start += chunk)
                delta.AddTo(merged.AsSpan(start, Math.Min(chunk, merged.Length - start)), start);
            Assert.True(expected.AsSpan().SequenceEqual(merged), $"chunk {chunk}: streamed merge differs from the whole merge");
        }
    }

    [Theory]
    [InlineData("bloom")]   // nn.Linear
    [InlineData("gpt2")]    // Conv1D (fan_in_fan_out)
    public void Streaming_merge_of_a_fixture_adapter_equals_the_reference_merge(string arch)
    {
        var baseDir = Paths.Case(arch, "base_model");
        var adapterDir = Paths.Case(arch, "lora/adapter");   // merged_model is PEFT's merge_and_unload of this adapter
        var architecture = Architecture.For(ModelConfig.Load(baseDir));
        using var tensors = CheckpointTensors.Open(baseDir);
        using var adapter = AdapterWeights.Open(adapterDir);
        var merged = OnnxExport.ApplyAdapter(adapter, architecture, new CheckpointWeights(tensors), new ExportOptions());
        using var peftMerged = CheckpointTensors.Open(Paths.Case(arch, "lora/merged_model"));
        using var loraFile = SafeTensorsFile.Open(Path.Combine(adapterDir, AdapterFormat.WeightsFile));
        var targets = ((LoraConfig)adapter.Config).FindTargets(architecture);
        Assert.NotEmpty(targets);
        foreach (var t in targets)
        {
            var name = t.Linear.WeightName;
            int inF = (int)t.Linear.InFeatures, outF = (int)t.Linear.OutFeatures;
            var expected = ReferenceMerge(tensors.ReadFloat32(name), loraFile.ReadFloat32(AdapterFormat.LoraAKey(t.Path)),
                loraFile.ReadFloat32(AdapterFormat.LoraBKey(t.Path)), t.Rank, inF, outF, t.Scaling, t.Linear.IsConv1D);
            var streamed = ReadInChunks(merged.AsIs(name).Values!, 777);
            Assert.True(expected.AsSpan().SequenceEqual(streamed), $"{arch} {name}: streamed merge differs from the reference merge");
            if (!t.Linear.IsConv1D)
            {
                // as the graph stores it ([in, out]): the mapped base weight transposed, then the delta added in that layout
                Assert.NotNull(merged.TransposedAddend(name));
                var transposed = ReadInChunks(merged.Transposed(name).Values!, 333);
                Assert.True(WeightSource.Transpose(expected, outF, inF).AsSpan().SequenceEqual(transposed), $"{arch} {name}: transposed merge differs from the reference merge");
            }
            // and it is PEFT's merge (float32 matmul there, so close rather than equal)
            var peft = peftMerged.ReadFloat32(name);
            Assert.True(expected.Zip(peft).Max(p => Math.Abs(p.First - p.Second)) < 1e-6, $"{arch} {name}: merge differs from PEFT's merged model");
            Assert.True(expected.Zip(tensors.ReadFloat32(name)).Max(p => Math.Abs(p.First - p.Second)) > 1e-6, $"{arch} {name}: the adapter changed nothing");
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Ia3_scaling_over_any_ranges_equals_the_whole_tensor(bool feedforward, bool conv1D)
    {
        const int inF = 31, outF = 19;
        var w = Random(inF * outF, 5);
        var l = Random(feedforward ? inF : outF, 6);
        var expected = (float[])w.Clone();
        for (int o = 0; o < outF; o++)
            for (int i = 0; i < inF; i++) expected[conv1D ? i * outF + o : o * inF + i] *= feedforward ? l[i] : l[o];
        var scaled = (float[])w.Clone();
        for (int start = 0; start < scaled.Length; start += 11)
            MergeIa3.Scale(scaled.AsSpan(start, Math.Min(11, scaled.Length - start)), start, l, inF, outF, feedforward, conv1D);
        Assert.Equal(expected, scaled);
    }

    [Fact]
    public void Float16_conversion_matches_the_scalar_cast_and_saturates_finite_values()
    {
        var values = new List<float>
        {
            0f, -0f, 1f, -1f, 65504f, -65504f, 65519.99f, 65520f, -65520f, 1e10f, -1e10f, float.MaxValue, float.MinValue,
            float.PositiveInfinity, float.NegativeInfinity, 5.96e-8f, 2.98e-8f, 1e-10f, 6.1e-5f, -6.1e-5f, 1.00048828125f, 1.000732421875f,
        };
        var rng = new Random(7);
        for (int i = 0; i < 4000; i++) values.Add((float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-9, 6))));
        var source = values.ToArray();
        var converted = new Half[source.Length];
        HalfConversion.Convert(source, converted);
        for (int i = 0; i < source.Length; i++)
        {
            var expected = float.IsFinite(source[i]) ? (Half)Math.Clamp(source[i], -65504f, 65504f) : (Half)source[i];
            Assert.True(BitConverter.HalfToUInt16Bits(expected) == BitConverter.HalfToUInt16Bits(converted[i]), $"{source[i]:R}: {converted[i]} != {expected}");
        }
        Assert.Equal(Half.MaxValue, converted[values.IndexOf(1e10f)]);
        Assert.Equal(Half.PositiveInfinity, converted[values.IndexOf(float.PositiveInfinity)]);

        var nan = new Half[1];
        HalfConversion.Convert([float.NaN], nan);
        Assert.True(Half.IsNaN(nan[0]));
    }

    [Fact]
    public void Data_file_holds_exactly_the_streamed_bytes_at_aligned_offsets()
    {
        // tensors of odd sizes around and beyond the writer's 8 MB buffers, float32 and float16, streamed and in memory
        var big = Random(2_500_001, 11);       // 10 MB: crosses buffers
        var odd = Random(1_234, 12);
        var source = new ArraySource(new() { ["big"] = ([2_500_001], big), ["odd"] = ([1_234], odd), ["t"] = ([1000, 517], Random(517_000, 13)) }, mapped: true);
        var g = new GraphBuilder();
        var x = g.Input("x", ElementType.Float, 1);
        g.Output("y", ElementType.Float, 1);
        var sum = x;
        foreach (var (name, data) in new[] { ("big", source.AsIs("big")), ("odd", source.AsIs("odd").ToFloat16()), ("t", source.Transposed("t")), ("mem", InitializerData.FromFloats(odd, 1_234)) })
        {
            var init = g.Initializer(name, data);
            var reduced = g.Op("ReduceSum", [data.Type == ElementType.Float16 ? g.Op("Cast", [init], Attr.Int("to", (long)ElementType.Float)) : init], Attr.Int("keepdims", 0));
            sum = g.Add(sum, reduced);
        }
        g.Node("Identity", [sum], outputs: ["y"]);
        var dir = Paths.TempDir("peft-onnx-stream");
        try
        {
            var result = ModelWriter.Write(g, Path.Combine(dir, "model.onnx"));
            var bytes = File.ReadAllBytes(result.DataPath!);
            Assert.Equal(result.DataBytes, bytes.LongLength);
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(result.ModelPath));
            var t = new float[517_000];
            source.Read("t", 0, t);
            var expected = new Dictionary<string, byte[]>
            {
                ["big"] = System.Runtime.InteropServices.MemoryMarshal.AsBytes(big.AsSpan()).ToArray(),
                ["odd"] = System.Runtime.InteropServices.MemoryMarshal.AsBytes(odd.Select(HalfConversion.ToHalf).ToArray().AsSpan()).ToArray(),
                ["t"] = System.Runtime.InteropServices.MemoryMarshal.AsBytes(WeightSource.Transpose(t, 1000, 517).AsSpan()).ToArray(),
                ["mem"] = System.Runtime.InteropServices.MemoryMarshal.AsBytes(odd.AsSpan()).ToArray(),
            };
            foreach (var tensor in model.Graph.Initializer.Where(i => i.DataLocation == TensorProto.Types.DataLocation.External))
            {
                long offset = long.Parse(tensor.ExternalData.Single(e => e.Key == "offset").Value);
                long length = long.Parse(tensor.ExternalData.Single(e => e.Key == "length").Value);
                Assert.Equal(0, offset % (length >= 4096 ? 4096 : 64));
                Assert.True(expected[tensor.Name].AsSpan().SequenceEqual(bytes.AsSpan((int)offset, (int)length)), $"{tensor.Name}: bytes differ");
            }
            Assert.Equal(4, model.Graph.Initializer.Count(i => i.DataLocation == TensorProto.Types.DataLocation.External));

            // the same graph written again gives the same bytes
            var again = ModelWriter.Write(g, Path.Combine(dir, "again.onnx"));
            Assert.Equal(bytes, File.ReadAllBytes(again.DataPath!));
        }
        finally { Directory.Delete(dir, true); }
    }
}
