using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Quantization;

/// <summary>
/// Codes quantized straight into the data file's write buffer, and through a chunk of their own where the buffer has no
/// room for a row (the rows that cross its end): the data file holds the reference quantizer's codes and scales, bit for
/// bit, whether the rows are read in place or copied.
/// </summary>
public class QuantizedCodesInFileTests
{
    /// <summary>Rows that can only be copied out (a computed or converted source).</summary>
    private sealed class CopiedOnly(float[] values) : FloatValues
    {
        public override long Count => values.LongLength;
        public override void Read(long start, Span<float> destination) => values.AsSpan(checked((int)start), destination.Length).CopyTo(destination);
    }

    [Theory]
    [InlineData(8, 32, true, 700, true)]
    [InlineData(8, 32, true, 700, false)]
    [InlineData(4, 16, false, 1200, true)]
    [InlineData(4, 16, false, 1200, false)]
    public void Codes_written_across_the_buffer_end_are_the_reference_codes(int bits, int block, bool symmetric, int n, bool inPlace)
    {
        const int k = 1040; // not a multiple of 32: a zero-padded last block
        var rng = new Random(bits * 31 + n);
        var w = new float[n * k];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 11 == 0 ? 2f : 0.05f);
        var format = new QuantizationFormat(bits, block, symmetric);
        var matrix = new QuantizedMatrix(inPlace ? FloatValues.Of(w) : new CopiedOnly(w), n, k, format);

        // 7.9 MB before the codes leaves room for part of them in the first 8 MB write buffer
        var g = new GraphBuilder("codes");
        g.Initializer("filler", InitializerData.FromFloats(new float[1_975_000], 1_975_000));
        g.Initializer("codes", matrix.Codes);
        g.Initializer("scales", matrix.Scales);
        if (!symmetric) g.Initializer("zero_points", matrix.ZeroPoints);
        var dir = Paths.TempDir("peft-onnx-codes-in-file");
        try
        {
            var written = ModelWriter.Write(g, Path.Combine(dir, "model.onnx"));
            var data = File.ReadAllBytes(written.DataPath!);
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(written.ModelPath));
            byte[] Bytes(string name)
            {
                var t = model.Graph.Initializer.Single(i => i.Name == name);
                var kv = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
                return data.AsSpan(int.Parse(kv["offset"]), int.Parse(kv["length"])).ToArray();
            }
            Assert.True(written.External["codes"].Offset < 8 << 20 && written.External["codes"].Offset + written.External["codes"].Length > 8 << 20);

            var reference = ReferenceQuantizer.Quantize(w, n, k, bits, block, symmetric);
            Assert.Equal(reference.Codes, Bytes("codes"));
            Assert.Equal(reference.Scales, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Bytes("scales")).ToArray());
            if (!symmetric) Assert.Equal(reference.ZeroPoints, Bytes("zero_points"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
