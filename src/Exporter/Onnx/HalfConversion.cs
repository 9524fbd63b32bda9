using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// float32 -> float16 for fp16 exports, vectorised: IEEE round-to-nearest-even as the (Half) cast, except that finite
/// values beyond ±65504 saturate to ±65504 instead of becoming infinite (so transformers' finfo(float32).min masks
/// become finfo(float16).min, not -inf). Infinities and NaN stay what they are.
/// </summary>
public static class HalfConversion
{
    public const float MaxHalf = 65504f;

    private const ushort PositiveInfinityBits = 0x7C00;
    private const ushort NegativeInfinityBits = 0xFC00;

    /// <summary>One value, as <see cref="Convert(ReadOnlySpan{float}, Span{Half})"/> converts each element.</summary>
    public static Half ToHalf(float f) => float.IsFinite(f) ? (Half)Math.Clamp(f, -MaxHalf, MaxHalf) : (Half)f;

    // optimized at first call: these loops run a few times on gigabytes, too few calls for tiered compilation to reach them in time
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Convert(ReadOnlySpan<float> source, Span<Half> destination)
    {
        if (destination.Length != source.Length) throw new ArgumentException("source and destination lengths differ");
        TensorPrimitives.ConvertToHalf(source, destination);
        // Rounding overflowed to ±inf only where |x| >= 65520: rare, so find those halves and saturate the finite ones.
        var bits = MemoryMarshal.Cast<Half, ushort>(destination);
        for (int i = bits.IndexOfAny(PositiveInfinityBits, NegativeInfinityBits); i >= 0;)
        {
            if (float.IsFinite(source[i])) destination[i] = source[i] > 0 ? Half.MaxValue : Half.MinValue;
            int next = bits[(i + 1)..].IndexOfAny(PositiveInfinityBits, NegativeInfinityBits);
            i = next < 0 ? -1 : i + 1 + next;
        }
    }
}
