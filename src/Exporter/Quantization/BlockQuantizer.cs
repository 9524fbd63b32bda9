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
        for (int b = 0; b < blocks; b++)
        {
            int start = b * size;
            int n = Math.Min(size, row.Length - start);
            row.Slice(start, n).CopyTo(block);
            block[n..size].Clear();
            var (scale, zeroPoint) = ScaleAndZeroPoint(format, block[..size]);
            scales[b] = scale;
            float reciprocal = scale != 0f ? 1f / scale : 0f;
            var blob = codes.Slice(b * format.BlobBytes, format.BlobBytes);
            if (format.Bits == 8)
            {
                for (int i = 0; i < size; i++) blob[i] = Code(block[i], reciprocal, zeroPoint, format.MaxCode);
                zeroPoints[b] = (byte)zeroPoint;
            }
            else
            {
                for (int i = 0; i < size; i += 2)
                    blob[i / 2] = (byte)(Code(block[i], reciprocal, zeroPoint, 15) | (Code(block[i + 1], reciprocal, zeroPoint, 15) << 4));
                zeroPoints[b / 2] |= (byte)((b & 1) == 0 ? zeroPoint : zeroPoint << 4);
            }
        }
    }

    /// <summary>One block's scale and zero point (see the class summary).</summary>
    public static (float Scale, int ZeroPoint) ScaleAndZeroPoint(QuantizationFormat format, ReadOnlySpan<float> block)
    {
        float min = float.MaxValue, max = -float.MaxValue;
        foreach (var v in block)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }
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
}
