namespace Peft.Onnx.Core.Peft;

/// <summary>
/// How PEFT's LoKr splits one [out, in] weight into kron(w1, w2): out = OutL * OutK and in = InM * InN from
/// PEFT's factorization; w1 is [OutL, InM] and w2 is [OutK, InN], each stored whole or as a rank-r product
/// (w_a [rows, r] @ w_b [r, cols]) when r is small against its sides.
/// </summary>
public sealed record LoKrFactors(int Rank, int OutL, int OutK, int InM, int InN, bool UseW1, bool UseW2)
{
    /// <summary>LoKrLayer.update_layer for an nn.Linear.</summary>
    public static LoKrFactors For(int inFeatures, int outFeatures, int rank, bool decomposeBoth, int decomposeFactor)
    {
        var (inM, inN) = Factorization(inFeatures, decomposeFactor);
        var (outL, outK) = Factorization(outFeatures, decomposeFactor);
        // r < max(...) / 2 in Python's true division
        bool useW1 = !(decomposeBoth && 2L * rank < Math.Max(outL, inM));
        bool useW2 = !(2L * rank < Math.Max(outK, inN));
        return new LoKrFactors(rank, outL, outK, inM, inN, useW1, useW2);
    }

    /// <summary>
    /// PEFT's factorization(dimension, factor): (m, n), m &lt;= n, m * n = dimension. A positive factor that divides
    /// the dimension is taken as is; otherwise m grows through the divisors while m + n shrinks and m stays at most
    /// the factor (any divisor for a negative factor).
    /// </summary>
    public static (int M, int N) Factorization(int dimension, int factor)
    {
        if (factor > 0 && dimension % factor == 0)
        {
            int fm = factor, fn = dimension / factor;
            return fm > fn ? (fn, fm) : (fm, fn);
        }
        if (factor < 0) factor = dimension;
        int m = 1, n = dimension;
        int length = m + n;
        while (m < n)
        {
            int newM = m + 1;
            while (dimension % newM != 0) newM++;
            int newN = dimension / newM;
            if (newM + newN > length || newM > factor) break;
            m = newM;
            n = newN;
        }
        return m > n ? (n, m) : (m, n);
    }

    public long[] W1Shape => [OutL, InM];
    public long[] W2Shape => [OutK, InN];

    /// <summary>Parameters of the saved factors.</summary>
    public long ParameterCount =>
        (UseW1 ? (long)OutL * InM : (long)Rank * (OutL + InM)) + (UseW2 ? (long)OutK * InN : (long)Rank * (OutK + InN));
}
