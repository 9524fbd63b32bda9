using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Quantization;

/// <summary>The MatMulNBits node the export writes, run by ONNX Runtime, against x @ the dequantized weight.</summary>
public class MatMulNBitsGraphTests
{
    [Theory]
    [InlineData(4, 32, true, 0, 96)]
    [InlineData(4, 16, false, 0, 96)]
    [InlineData(8, 32, true, 0, 96)]
    [InlineData(8, 64, false, 0, 96)]
    [InlineData(4, 128, true, 0, 200)] // K not a multiple of the block: the last block is zero-padded
    [InlineData(8, 32, false, 0, 40)]
    public void Output_equals_matmul_with_the_dequantized_weight(int bits, int block, bool symmetric, int accuracyLevel, int k)
    {
        const int n = 24, rows = 3;
        var rng = new Random(bits + block + k);
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var x = Enumerable.Range(0, rows * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var format = new QuantizationFormat(bits, block, symmetric);

        var actual = Run(w, n, k, format, accuracyLevel, x, rows);

        var dequantized = ReferenceQuantizer.Dequantize(ReferenceQuantizer.Quantize(w, n, k, bits, block, symmetric), n, k, block);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < n; j++)
            {
                double expected = 0;
                for (int i = 0; i < k; i++) expected += (double)x[r * k + i] * dequantized[j * k + i];
                Assert.True(Math.Abs(expected - actual[r * n + j]) <= 1e-4 * (1 + Math.Abs(expected)), $"[{r}, {j}]: {actual[r * n + j]} vs {expected}");
            }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    public void Accuracy_level_4_stays_near_the_float_result(int bits)
    {
        // level 4 quantizes the activations to int8 per block too: close to, not equal to, the float product
        const int n = 32, k = 64, rows = 2;
        var rng = new Random(bits);
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var x = Enumerable.Range(0, rows * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var format = new QuantizationFormat(bits, 32);
        var level0 = Run(w, n, k, format, 0, x, rows);
        var level4 = Run(w, n, k, format, 4, x, rows);
        for (int i = 0; i < level0.Length; i++) Assert.True(Math.Abs(level0[i] - level4[i]) < 0.1, $"{i}: {level4[i]} vs {level0[i]}");
    }

    private static float[] Run(float[] w, int n, int k, QuantizationFormat format, int accuracyLevel, float[] x, int rows)
    {
        var g = new GraphBuilder();
        var input = g.Input("x", ElementType.Float, rows, k);
        g.Output("y", ElementType.Float, rows, n);
        var weight = QuantizedMatMul.AddWeight(g, new QuantizedMatrix(FloatValues.Of(w), n, k, format), "w");
        QuantizedMatMul.Apply(g, weight, accuracyLevel, input, "y");
        var dir = Paths.TempDir("peft-onnx-nbits");
        try
        {
            var path = Path.Combine(dir, "model.onnx");
            ModelWriter.Write(g, path);
            using var session = new InferenceSession(path);
            using var value = OrtValue.CreateTensorValueFromMemory(x, [rows, k]);
            using var outputs = session.Run(new RunOptions(), ["x"], [value], ["y"]);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally { Directory.Delete(dir, true); }
    }
}
