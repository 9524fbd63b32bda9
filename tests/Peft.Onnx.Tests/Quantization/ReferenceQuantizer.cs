namespace Peft.Onnx.Tests.Quantization;

/// <summary>
/// A straightforward, independent statement of ONNX Runtime's MatMulNBits block quantization (its Python quantizer
/// over MLAS): pad K with zeros to whole blocks; per block, symmetric: scale = -(max if |max| > |min| else min) / 2^(bits-1),
/// zero point 2^(bits-1); asymmetric: lo = min(min, 0), hi = max(max, 0), scale = (hi - lo) / (2^bits - 1), zero point
/// round(-lo / scale) within [0, 2^bits - 1]; code = clamp(round(v * (1/scale) + zp)) with float32 products, halves
/// away from zero. Element by element, with its own rounding and bit packing, for the tests to compare with.
/// </summary>
public static class ReferenceQuantizer
{
    public sealed record Result(byte[] Codes, float[] Scales, byte[] ZeroPoints, int[,] Unpacked, int[,] UnpackedZeroPoints);

    /// <summary>Quantizes <paramref name="w"/> [n, k] (row = one output's inputs).</summary>
    public static Result Quantize(float[] w, int n, int k, int bits, int block, bool symmetric)
    {
        int blocks = (k + block - 1) / block;
        int maxCode = (1 << bits) - 1, mid = 1 << (bits - 1);
        var codes = new int[n, blocks * block];
        var scales = new float[n * blocks];
        var zps = new int[n, blocks];
        for (int row = 0; row < n; row++)
            for (int b = 0; b < blocks; b++)
            {
                var values = new float[block];
                for (int i = 0; i < block; i++)
                {
                    int col = b * block + i;
                    values[i] = col < k ? w[row * k + col] : 0f;
                }
                float min = values.Min(), max = values.Max();
                float scale;
                int zp;
                if (symmetric)
                {
                    float m = Math.Abs(max) > Math.Abs(min) ? max : min;
                    scale = -m / mid;
                    zp = mid;
                }
                else
                {
                    float lo = Math.Min(min, 0f), hi = Math.Max(max, 0f);
                    scale = (hi - lo) / maxCode;
                    float z = scale == 0f ? lo : 0f - lo / scale;
                    zp = z < 0 ? 0 : z > maxCode ? maxCode : (int)RoundHalfAway(z);
                }
                scales[row * blocks + b] = scale;
                zps[row, b] = zp;
                float reciprocal = scale == 0f ? 0f : 1f / scale;
                for (int i = 0; i < block; i++)
                {
                    float t = values[i] * reciprocal + zp;
                    codes[row, b * block + i] = (int)Math.Clamp(RoundHalfAway(t), 0, maxCode);
                }
            }
        return new Result(Pack(codes, n, blocks * block, bits), scales, PackZeroPoints(zps, n, blocks, bits), codes, zps);
    }

    /// <summary>W [n, k] back from codes: (code - zp) * scale, the padding dropped.</summary>
    public static float[] Dequantize(Result q, int n, int k, int block)
    {
        int blocks = (k + block - 1) / block;
        var w = new float[n * k];
        for (int row = 0; row < n; row++)
            for (int col = 0; col < k; col++)
                w[row * k + col] = (q.Unpacked[row, col] - q.UnpackedZeroPoints[row, col / block]) * q.Scales[row * blocks + col / block];
        return w;
    }

    private static double RoundHalfAway(float t) => t >= 0 ? Math.Floor((double)t + 0.5) : -Math.Floor(-(double)t + 0.5);

    private static byte[] Pack(int[,] codes, int n, int paddedK, int bits)
    {
        var bytes = new byte[n * paddedK * bits / 8];
        for (int row = 0; row < n; row++)
            for (int col = 0; col < paddedK; col++)
            {
                long bit = ((long)row * paddedK + col) * bits;
                bytes[bit / 8] |= (byte)(codes[row, col] << (int)(bit % 8));
            }
        return bytes;
    }

    private static byte[] PackZeroPoints(int[,] zps, int n, int blocks, int bits)
    {
        int perRow = (blocks * bits + 7) / 8;
        var bytes = new byte[n * perRow];
        for (int row = 0; row < n; row++)
            for (int b = 0; b < blocks; b++)
                bytes[row * perRow + b * bits / 8] |= (byte)(zps[row, b] << (b * bits % 8));
        return bytes;
    }
}
