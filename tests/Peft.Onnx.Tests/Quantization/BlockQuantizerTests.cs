using Peft.Onnx.Core;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Quantization;
using Xunit;

namespace Peft.Onnx.Tests.Quantization;

/// <summary>The exporter's block quantizer against the independent <see cref="ReferenceQuantizer"/>, bit for bit.</summary>
public class BlockQuantizerTests
{
    public static TheoryData<int, int, bool, int> Formats()
    {
        var data = new TheoryData<int, int, bool, int>();
        foreach (var bits in new[] { 4, 8 })
            foreach (var block in new[] { 16, 32, 64, 128 })
                foreach (var symmetric in new[] { true, false })
                    data.Add(bits, block, symmetric, block == 128 ? 200 : 96); // 200: a zero-padded last block
        return data;
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Random_weights_quantize_as_the_reference_does(int bits, int block, bool symmetric, int k)
    {
        const int n = 37;
        var rng = new Random(bits * 1000 + block + (symmetric ? 1 : 0));
        var w = new float[n * k];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 7 == 0 ? 3f : 0.05f);
        // a constant row, an all-zero row and an all-negative row: zero scales and one-sided ranges
        for (int i = 0; i < k; i++) { w[i] = 0.25f; w[k + i] = 0f; w[2 * k + i] = -MathF.Abs(w[2 * k + i]) - 0.01f; }
        AssertSameAsReference(w, n, k, new QuantizationFormat(bits, block, symmetric));
    }

    [Theory]
    [InlineData(4, true)]
    [InlineData(8, true)]
    [InlineData(4, false)]
    [InlineData(8, false)]
    public void Halfway_values_round_away_from_zero(int bits, bool symmetric)
    {
        // symmetric int4 with max -8 in the block: scale 1, so v + 8 lands on x.5 exactly for v = k + 0.5
        const int k = 16;
        var w = new float[k];
        for (int i = 0; i < k; i++) w[i] = i == 0 ? -8f * (bits == 8 ? 16f : 1f) : (i - 8) + 0.5f;
        var format = new QuantizationFormat(bits, 16, symmetric);
        AssertSameAsReference(w, 1, k, format);
        if (bits == 4 && symmetric)
        {
            // v = -1.5 -> -1.5 * (1 / scale) + 8 with scale = 1: 6.5 -> 7 (away from zero), where banker's rounding gives 6
            var codes = new byte[8];
            BlockQuantizer.QuantizeRow(format, w, codes, new float[1], new byte[1], new float[16]);
            Assert.Equal(1f, BlockQuantizer.ScaleAndZeroPoint(format, w).Scale);
            int index = Array.IndexOf(w, -1.5f);
            int code = (codes[index / 2] >> (4 * (index % 2))) & 0xF;
            Assert.Equal(7, code);
        }
    }

    [Fact]
    public void A_tie_in_magnitude_takes_the_minimum()
    {
        var format = new QuantizationFormat(4, 16);
        var block = new float[16];
        block[3] = 2f;
        block[5] = -2f;
        // min -2 is chosen: scale = 2 / 8, so -2 maps to code 16 -> clamped 15 and +2 to code 0
        Assert.Equal(0.25f, BlockQuantizer.ScaleAndZeroPoint(format, block).Scale);
        AssertSameAsReference(block, 1, 16, format);
    }

    [Fact]
    public void Real_fixture_weights_quantize_as_the_reference_does()
    {
        using var tensors = Peft.Onnx.Core.SafeTensors.CheckpointTensors.Open(Support.Paths.Case("llama", "base_model"));
        var weights = new Peft.Onnx.Exporter.Weights.CheckpointWeights(tensors);
        foreach (var name in new[] { "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight", "lm_head.weight" })
        {
            var shape = weights.Shape(name);
            var w = weights.ReadFloat32(name);
            foreach (var format in new[] { new QuantizationFormat(4, 32), new QuantizationFormat(8, 16, false), new QuantizationFormat(4, 128, false) })
                AssertSameAsReference(w, (int)shape[0], (int)shape[1], format);
        }
    }

    [Theory]
    [InlineData(3, 32, "bits 3")]
    [InlineData(4, 24, "block size 24")]
    [InlineData(8, 8, "block size 8")]
    public void Unsupported_formats_are_refused_naming_the_value(int bits, int block, string named)
    {
        var ex = Assert.Throws<PeftOnnxException>(() => new QuantizationFormat(bits, block).Validated());
        Assert.Contains(named, ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Throws<PeftOnnxException>(() => new WeightQuantization(new QuantizationFormat(4), AccuracyLevel: 5).Validated());
    }

    /// <summary>Quantizes through <see cref="QuantizedMatrix"/>'s streamed initializers, as the export writes them.</summary>
    private static void AssertSameAsReference(float[] w, int n, int k, QuantizationFormat format)
    {
        var expected = ReferenceQuantizer.Quantize(w, n, k, format.Bits, format.BlockSize, format.Symmetric);
        var matrix = new QuantizedMatrix(FloatValues.Of(w), n, k, format);
        var codes = matrix.Codes.ToArray();
        var scales = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(matrix.Scales.ToArray()).ToArray();
        Assert.Equal([n, format.BlockCount(k), format.BlobBytes], matrix.Codes.Dims);
        Assert.Equal(expected.Codes, codes);
        Assert.Equal(expected.Scales.Select(BitConverter.SingleToInt32Bits), scales.Select(BitConverter.SingleToInt32Bits));
        if (!format.Symmetric) Assert.Equal(expected.ZeroPoints, matrix.ZeroPoints.ToArray());
    }
}
