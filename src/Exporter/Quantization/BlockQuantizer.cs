using System.Runtime.Intrinsics;

namespace Peft.Onnx.Exporter.Quantization;

/// <summary>
/// Block-wise round-to-nearest quantization of one output's weights (a row of K inputs) exactly as ONNX Runtime's
/// own MatMulNBits quantizer computes it, so an export matches what its tools would write bit for bit:
/// the row is zero-padded to whole blocks; per block, symmetric: scale = -m / MidCode where m is the block's max or
/// min, whichever has the larger magnitude (the min on a tie), zero point MidCode; asymmetric: the range widened to
/// include 0, scale = (max - min) / MaxCode, zero point round(-min / scale) clamped to [0, MaxCode]. Each code is
/// clamp(round(v * (1 / scale) + zero point), 0, MaxCode) in float32, rounding halves away from zero; a zero scale
/// gives reciprocal 0. Codes are packed along K: 4-bit pairs low nibble first.
/// </summary>
public static class BlockQuantizer
{
    /// <summary>
    /// Quantizes <paramref name="row"/> (K values) into <paramref name="codes"/> (BlockCount * BlobBytes),
    /// <paramref name="scales"/> (BlockCount) and <paramref name="zeroPoints"/> (ZeroPointBytes, packed; written for
    /// symmetric formats too, as the MidCode MatMulNBits assumes). <paramref name="block"/> is scratch of BlockSize floats.
    /// </summary>
    public static void QuantizeRow(QuantizationFormat format, ReadOnlySpan<float> row, Span<byte> codes, Span<float> scales, Span<byte> zeroPoints, Span<float> block)
    {
        int size = format.BlockSize;
        long blocks = format.BlockCount(row.Length);
        if (codes.Length < blocks * format.BlobBytes || scales.Length < blocks || zeroPoints.Length < format.ZeroPointBytes(row.Length) || block.Length < size)
            throw new ArgumentException("output spans are smaller than the row's blocks need");
        if (format.Bits == 4) zeroPoints[..(int)format.ZeroPointBytes(row.Length)].Clear();
        Span<int> blockCodes = stackalloc int[size <= MaxStackBlock ? size : 0];
        if (size > MaxStackBlock) blockCodes = new int[size];
        for (int b = 0; b < blocks; b++)
        {
            int start = b * size;
            int n = Math.Min(size, row.Length - start);
            ReadOnlySpan<float> values;
            if (n == size) values = row.Slice(start, size);
            else
            {
                row.Slice(start, n).CopyTo(block);
                block[n..size].Clear();
                values = block[..size];
            }
            var (scale, zeroPoint) = ScaleAndZeroPoint(format, values);
            scales[b] = scale;
            float reciprocal = scale != 0f ? 1f / scale : 0f;
            if (!VectorCodes(values, reciprocal, zeroPoint, format.MaxCode, blockCodes))
                for (int i = 0; i < size; i++) blockCodes[i] = Code(values[i], reciprocal, zeroPoint, format.MaxCode);
            var blob = codes.Slice(b * format.BlobBytes, format.BlobBytes);
            if (format.Bits == 8)
            {
                for (int i = 0; i < size; i++) blob[i] = (byte)blockCodes[i];
                zeroPoints[b] = (byte)zeroPoint;
            }
            else
            {
                for (int i = 0; i < size; i += 2) blob[i / 2] = (byte)(blockCodes[i] | (blockCodes[i + 1] << 4));
                zeroPoints[b / 2] |= (byte)((b & 1) == 0 ? zeroPoint : zeroPoint << 4);
            }
        }
    }

    private const int MaxStackBlock = 1024;

        /// <summary>One block's scale and zero point (see the class summary).</summary>
    public static (float Scale, int ZeroPoint) ScaleAndZeroPoint(QuantizationFormat format, ReadOnlySpan<float> block)
    {
        // the vector range equals the scalar one but for NaNs (which it propagates) and the sign of a zero (which
        // only a zero scale shows): both take the scalar scan
        if (VectorRange(block, out float min, out float max) && ScaleFrom(format, min, max) is { Scale: not 0f } fast && float.IsFinite(fast.Scale))
            return fast;
        min = float.MaxValue;
        max = -float.MaxValue;
        foreach (var v in block)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }
        return ScaleFrom(format, min, max);
    }

    private static (float Scale, int ZeroPoint) ScaleFrom(QuantizationFormat format, float min, float max)
    {
        if (format.Symmetric)
        {
            float m = MathF.Abs(max) > MathF.Abs(min) ? max : min;
            return (-m / format.MidCode, format.MidCode);
        }
        min = MathF.Min(min, 0f);
        max = MathF.Max(max, 0f);
        float scale = (max - min) / format.MaxCode;
        float zero = scale != 0f ? 0f - min / scale : min;
        int zeroPoint = zero < 0f ? 0 : zero > format.MaxCode ? format.MaxCode : (int)MathF.Round(zero, MidpointRounding.AwayFromZero);
        return (scale, zeroPoint);
    }

    private static byte Code(float v, float reciprocal, int zeroPoint, int maxCode) =>
        (byte)Math.Clamp(MathF.Round(v * reciprocal + zeroPoint, MidpointRounding.AwayFromZero), 0f, maxCode);

    /// <summary>The block's smallest and largest value, eight lanes at a time; false where vectors do not apply or a value is NaN.</summary>
    private static bool VectorRange(ReadOnlySpan<float> block, out float min, out float max)
    {
        min = max = 0f;
        if (!Vector256.IsHardwareAccelerated || block.Length % Vector256<float>.Count != 0 || block.Length == 0) return false;
        var lo = Vector256.Create(block);
        var hi = lo;
        for (int i = Vector256<float>.Count; i < block.Length; i += Vector256<float>.Count)
        {
            var v = Vector256.Create(block[i..]);
            lo = Vector256.Min(lo, v);
            hi = Vector256.Max(hi, v);
        }
        min = lo[0];
        max = hi[0];
        for (int i = 1; i < Vector256<float>.Count; i++)
        {
            min = MathF.Min(min, lo[i]);
            max = MathF.Max(max, hi[i]);
        }
        return !float.IsNaN(min) && !float.IsNaN(max);
    }

    /// <summary>
    /// <see cref="Code"/> of every value, eight lanes at a time: the same float32 multiply then add (never fused), the
    /// same rounding (truncate, then one step away from zero when the dropped part is at least a half, both exact in
    /// float32) and clamp. False where vectors do not apply (the caller computes the codes one by one), or a zero
    /// reciprocal, whose products may be NaN.
    /// </summary>
    private static bool VectorCodes(ReadOnlySpan<float> values, float reciprocal, int zeroPoint, int maxCode, Span<int> codes)
    {
        if (!Vector256.IsHardwareAccelerated || values.Length % Vector256<float>.Count != 0 || reciprocal == 0f || !float.IsFinite(reciprocal)) return false;
        var r = Vector256.Create(reciprocal);
        var zp = Vector256.Create((float)zeroPoint);
        var half = Vector256.Create(0.5f);
        var one = Vector256.Create(1f);
        var top = Vector256.Create((float)maxCode);
        for (int i = 0; i < values.Length; i += Vector256<float>.Count)
        {
            var v = Vector256.Create(values[i..]);
            var y = Vector256.Add(Vector256.Multiply(v, r), zp);
            var t = Vector256.Truncate(y);
            var away = Vector256.GreaterThanOrEqual(Vector256.Abs(y - t), half);
            var step = Vector256.ConditionalSelect(Vector256.LessThan(y, Vector256<float>.Zero), -one, one);
            var rounded = Vector256.ConditionalSelect(away, t + step, t);
            var clamped = Vector256.Min(Vector256.Max(rounded, Vector256<float>.Zero), top);
            Vector256.ConvertToInt32(clamped).CopyTo(codes[i..]);
        }
        return true;
    }
}
