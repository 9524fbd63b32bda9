using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Quantization;

namespace Peft.Onnx.Bench;

/// <summary>
/// Times ONNX Runtime's MatMulNBits kernel on one setting at M = 1 (a batch-1 decode step), in a small model built with
/// the exporter's own graph writer and quantizer, under the Runtime's session settings (all graph optimizations, one
/// intra-op thread per physical core, idle threads sleeping). Resident: one node whose weight's codes fit a core's
/// cache, run many times, so the kernel's arithmetic is all that is timed. Streamed: distinct weights of the real
/// shape totalling several times the last-level cache, each read once per run, as a decode step reads its layers.
/// Kernel times come from ONNX Runtime's profiler, so the run's own overhead is not charged to the kernel.
/// </summary>
public static class KernelCeilingProbe
{
    /// <summary>Distinct random rows quantized; the weight repeats them (the kernel's time does not depend on the values).</summary>
    private const int DistinctRows = 64;

    private const int WarmUpRuns = 2;

    /// <summary>Nodes a streamed model holds at most (a small shape would otherwise need thousands).</summary>
    private const int MaxNodes = 512;

    /// <summary>One node whose codes are about <paramref name="codeBytes"/> (outputs cut to fit, at least one), <paramref name="runs"/> timed runs.</summary>
    public static KernelRate Resident(MatMulNBitsShape s, string work, long codeBytes, int runs)
    {
        long rowCodes = Math.Max(1, s.K * s.Bits / 8);
        long n = Math.Clamp(codeBytes / rowCodes, 1, s.N);
        if (n >= 16) n -= n % 16;
        return Time(s, n, 1, work, runs);
    }

    /// <summary>
    /// Distinct weights of the real shape (outputs cut so one weight is no larger than <paramref name="totalBytes"/>)
    /// until they hold <paramref name="totalBytes"/>, <paramref name="runs"/> timed runs.
    /// </summary>
    public static KernelRate Streamed(MatMulNBitsShape s, string work, long totalBytes, int runs)
    {
        long rowBytes = MatMulNBitsShape.ByteCount(s.Bits, s.BlockSize, s.ZeroPoints, s.K, 1);
        long n = Math.Clamp(totalBytes / rowBytes, 1, s.N);
        long nodeBytes = n * rowBytes;
        int nodes = (int)Math.Clamp((totalBytes + nodeBytes - 1) / nodeBytes, 1, MaxNodes);
        return Time(s, n, nodes, work, runs);
    }

    private static KernelRate Time(MatMulNBitsShape s, long n, int nodes, string work, int runs)
    {
        var dir = Path.Combine(work, $"kernel-{s.Bits}b{s.BlockSize}l{s.AccuracyLevel}-{s.K}x{n}x{nodes}");
        try
        {
            var format = new QuantizationFormat(s.Bits, s.BlockSize, !s.ZeroPoints);
            var (codes, scales, zeroPoints) = Quantized(format, s.K, n);
            var g = new GraphBuilder("matmulnbits_ceiling");
            g.Input("x", ElementType.Float, 1, s.K);
            long blocks = format.BlockCount(s.K);
            for (int i = 0; i < nodes; i++)
            {
                // every node gets its own initializers, each the same bytes rotated by the node's index (whole floats for
                // scales): no two weights hold the same content, should anything share equal weights
                int shift = i;
                List<string> names =
                [
                    g.Initializer($"w{i}_Q{s.Bits}", InitializerData.Deferred(ElementType.UInt8, [n, blocks, format.BlobBytes], st => Rotated(st, codes, shift))),
                    g.Initializer($"w{i}_scales", InitializerData.Deferred(ElementType.Float, [n * blocks], st => Rotated(st, scales, shift * sizeof(float)))),
                ];
                if (s.ZeroPoints) names.Add(g.Initializer($"w{i}_zero_points", InitializerData.Deferred(ElementType.UInt8, [zeroPoints.LongLength], st => Rotated(st, zeroPoints, shift))));
                QuantizedMatMul.Apply(g, new QuantizedWeightInputs(names, s.K, n, format), s.AccuracyLevel, "x", $"y{i}");
                g.Output($"y{i}", ElementType.Float, 1, n);
            }
            var model = Path.Combine(dir, "model.onnx");
            ModelWriter.Write(g, model, new ModelWriteOptions { FlushToDisk = false });
            var summary = Run(model, dir, s.K, nodes, runs);
            var op = ((List<Dictionary<string, object?>>)summary["operators"]!).FirstOrDefault(o => (string?)o["op"] == "MatMulNBits")
                ?? throw new InvalidOperationException("the ceiling model's profile holds no MatMulNBits kernel");
            return new KernelRate(nodes, s.K, n, nodes * (long)(codes.Length + scales.Length + (s.ZeroPoints ? zeroPoints.Length : 0)),
                (double)op["microseconds_per_step"]!, Convert.ToDouble(op["least_microseconds_per_step"]), (double)summary["run_microseconds_per_step"]!);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private static void Rotated(Stream stream, byte[] bytes, int shift)
    {
        int start = bytes.Length > 0 ? shift % bytes.Length : 0;
        stream.Write(bytes, start, bytes.Length - start);
        stream.Write(bytes, 0, start);
    }

    /// <summary>The profile summary (<see cref="DecodeStepProfile.Summarize"/>) of <paramref name="runs"/> runs after the warm-up ones.</summary>
    private static Dictionary<string, object?> Run(string model, string dir, long k, int nodes, int runs)
    {
        using var options = new SessionOptions
        {
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = GenAiThreads.PhysicalCores(),
            ProfileOutputPathPrefix = Path.Combine(dir, "profile"),
            EnableProfiling = true,
        };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        options.AddSessionConfigEntry("session.inter_op.allow_spinning", "0");
        string profile;
        using (var session = new InferenceSession(model, options))
        using (var runOptions = new RunOptions())
        {
            var random = new Random(7);
            var x = new float[k];
            for (int i = 0; i < x.Length; i++) x[i] = random.NextSingle() * 2 - 1;
            using var input = OrtValue.CreateTensorValueFromMemory(x, [1, k]);
            var outputs = Enumerable.Range(0, nodes).Select(i => $"y{i}").ToArray();
            for (int r = 0; r < WarmUpRuns + runs; r++)
            {
                using var results = session.Run(runOptions, ["x"], [input], outputs);
            }
            profile = session.EndProfiling();
        }
        return DecodeStepProfile.Summarize(profile, skipRuns: WarmUpRuns);
    }

    /// <summary>[n, K] random weights (<see cref="DistinctRows"/> distinct rows, repeated) quantized by the exporter's <see cref="BlockQuantizer"/>.</summary>
    private static (byte[] Codes, byte[] Scales, byte[] ZeroPoints) Quantized(QuantizationFormat format, long k, long n)
    {
        long blocks = format.BlockCount(k);
        int rowCodes = checked((int)(blocks * format.BlobBytes)), rowScales = checked((int)blocks), rowZeroPoints = checked((int)format.ZeroPointBytes(k));
        var codes = new byte[checked(n * rowCodes)];
        var scales = new float[checked(n * rowScales)];
        var zeroPoints = new byte[checked(n * rowZeroPoints)];
        var random = new Random(1234);
        var row = new float[k];
        var block = new float[format.BlockSize];
        int distinct = (int)Math.Min(n, DistinctRows);
        for (int r = 0; r < distinct; r++)
        {
            for (int i = 0; i < row.Length; i++) row[i] = (random.NextSingle() * 2 - 1) * 0.05f;
            BlockQuantizer.QuantizeRow(format, row, codes.AsSpan(r * rowCodes, rowCodes), scales.AsSpan(r * rowScales, rowScales),
                zeroPoints.AsSpan(r * rowZeroPoints, rowZeroPoints), block);
        }
        for (long r = distinct; r < n; r++)
        {
            long from = r % distinct;
            Array.Copy(codes, from * rowCodes, codes, r * rowCodes, rowCodes);
            Array.Copy(scales, from * rowScales, scales, r * rowScales, rowScales);
            Array.Copy(zeroPoints, from * rowZeroPoints, zeroPoints, r * rowZeroPoints, rowZeroPoints);
        }
        var scaleBytes = new byte[scales.Length * sizeof(float)];
        Buffer.BlockCopy(scales, 0, scaleBytes, 0, scaleBytes.Length);
        return (codes, scaleBytes, zeroPoints);
    }
}
