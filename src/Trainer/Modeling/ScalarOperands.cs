using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>
/// Tensor arithmetic with .NET numbers that keeps every temporary <see cref="Scalar"/> alive until libtorch has
/// read it. TorchSharp 0.107 turns numbers into finalizable Scalars (operators, implicit conversions, and
/// defaults such as the alpha of 1 inside <c>Tensor.add</c>, so <c>tensor + tensor</c> too) and hands only their
/// handle to native code: nothing roots the Scalar during the call, so a garbage collection started by another
/// thread can free the c10::Scalar while libtorch reads it ("Expected false to be true ... toFloat").
/// Each method holds its Scalar in a <c>using</c>, which keeps it reachable through the call and frees it at once.
/// The Scalar has the argument's .NET type, exactly as TorchSharp's implicit conversion makes it, so dtype
/// promotion and rounding are unchanged (an int stays an int Scalar: a long tensor minus 1 stays long).
/// </summary>
internal static class ScalarOperands
{
    /// <summary><c>left + right</c> with the alpha of 1 that <c>Tensor.add</c> would create held here.</summary>
    public static Tensor Plus(this Tensor left, Tensor right)
    {
        using var one = 1.ToScalar();
        return left.add(right, one);
    }

    /// <summary><c>left.add(right, alpha)</c>.</summary>
    public static Tensor Plus(this Tensor left, Tensor right, double alpha)
    {
        using var a = alpha.ToScalar();
        return left.add(right, a);
    }

    // Tensor.add(Scalar) would also make its alpha of 1 itself, so both Scalars are held here.
    public static Tensor Plus(this Tensor left, double right) { using var s = right.ToScalar(); using var one = 1.ToScalar(); return left.add(s, one); }
    public static Tensor Plus(this Tensor left, float right) { using var s = right.ToScalar(); using var one = 1.ToScalar(); return left.add(s, one); }
    public static Tensor Plus(this Tensor left, int right) { using var s = right.ToScalar(); using var one = 1.ToScalar(); return left.add(s, one); }
    public static Tensor Plus(this Tensor left, long right) { using var s = right.ToScalar(); using var one = 1.ToScalar(); return left.add(s, one); }

    /// <summary>In-place <c>add_(other)</c> with its alpha of 1 held here.</summary>
    public static Tensor PlusInPlace(this Tensor target, Tensor other)
    {
        using var one = 1.ToScalar();
        return target.add_(other, one);
    }

    /// <summary>In-place <c>add_(other, alpha)</c>.</summary>
    public static Tensor PlusInPlace(this Tensor target, Tensor other, double alpha)
    {
        using var a = alpha.ToScalar();
        return target.add_(other, a);
    }

    /// <summary>In-place <c>add_(value)</c> with its alpha of 1 held here.</summary>
    public static Tensor PlusInPlace(this Tensor target, double value)
    {
        using var v = value.ToScalar();
        using var one = 1.ToScalar();
        return target.add_(v, one);
    }

    public static Tensor Minus(this Tensor left, double right) { using var s = right.ToScalar(); return left.sub(s); }
    public static Tensor Minus(this Tensor left, float right) { using var s = right.ToScalar(); return left.sub(s); }
    public static Tensor Minus(this Tensor left, int right) { using var s = right.ToScalar(); return left.sub(s); }
    public static Tensor Minus(this Tensor left, long right) { using var s = right.ToScalar(); return left.sub(s); }

    /// <summary><c>left - right</c> for a number on the left, as TorchSharp computes it: <c>-right + left</c>.</summary>
    public static Tensor SubtractedFrom(this Tensor right, double left)
    {
        using var negated = right.negative();
        return negated.Plus(left);
    }

    /// <inheritdoc cref="SubtractedFrom(Tensor, double)"/>
    public static Tensor SubtractedFrom(this Tensor right, int left)
    {
        using var negated = right.negative();
        return negated.Plus(left);
    }

    /// <inheritdoc cref="SubtractedFrom(Tensor, double)"/>
    public static Tensor SubtractedFrom(this Tensor right, long left)
    {
        using var negated = right.negative();
        return negated.Plus(left);
    }

    public static Tensor Times(this Tensor left, double right) { using var s = right.ToScalar(); return left.mul(s); }
    public static Tensor Times(this Tensor left, float right) { using var s = right.ToScalar(); return left.mul(s); }
    public static Tensor Times(this Tensor left, int right) { using var s = right.ToScalar(); return left.mul(s); }
    public static Tensor Times(this Tensor left, long right) { using var s = right.ToScalar(); return left.mul(s); }

    public static Tensor TimesInPlace(this Tensor target, double factor) { using var s = factor.ToScalar(); return target.mul_(s); }

    public static Tensor Over(this Tensor left, double right) { using var s = right.ToScalar(); return left.div(s); }
    public static Tensor Over(this Tensor left, float right) { using var s = right.ToScalar(); return left.div(s); }
    public static Tensor Over(this Tensor left, int right) { using var s = right.ToScalar(); return left.div(s); }
    public static Tensor Over(this Tensor left, long right) { using var s = right.ToScalar(); return left.div(s); }

    /// <summary><c>numerator / denominator</c> for a number on the left, as TorchSharp computes it: <c>reciprocal * numerator</c>.</summary>
    public static Tensor DividedInto(this Tensor denominator, double numerator)
    {
        using var reciprocal = denominator.reciprocal();
        return reciprocal.Times(numerator);
    }

    public static Tensor Pow(this Tensor x, double exponent) { using var s = exponent.ToScalar(); return x.pow(s); }
    public static Tensor Pow(this Tensor x, int exponent) { using var s = exponent.ToScalar(); return x.pow(s); }

    public static Tensor MaskedFill(this Tensor x, Tensor mask, double value) { using var s = value.ToScalar(); return x.masked_fill(mask, s); }
    public static Tensor MaskedFill(this Tensor x, Tensor mask, int value) { using var s = value.ToScalar(); return x.masked_fill(mask, s); }
    public static Tensor MaskedFill(this Tensor x, Tensor mask, long value) { using var s = value.ToScalar(); return x.masked_fill(mask, s); }

    public static Tensor Equal(this Tensor x, long value) { using var s = value.ToScalar(); return x.eq(s); }
    public static Tensor NotEqual(this Tensor x, long value) { using var s = value.ToScalar(); return x.ne(s); }
    public static Tensor Greater(this Tensor x, long value) { using var s = value.ToScalar(); return x.gt(s); }
    public static Tensor Less(this Tensor x, long value) { using var s = value.ToScalar(); return x.lt(s); }

    /// <summary><c>fill_(value)</c>.</summary>
    public static Tensor FillWith(this Tensor x, double value) { using var s = value.ToScalar(); return x.fill_(s); }

    /// <summary><c>torch.arange(start, stop, step)</c>; integral bounds give int64 unless <paramref name="dtype"/> says otherwise.</summary>
    public static Tensor Arange(long start, long stop, long step = 1, ScalarType? dtype = null, Device? device = null)
    {
        using var first = start.ToScalar();
        using var end = stop.ToScalar();
        using var stride = step.ToScalar();
        return arange(first, end, stride, dtype, device);
    }
}
