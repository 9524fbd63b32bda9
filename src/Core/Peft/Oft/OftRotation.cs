namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's OFTRotationModule (0.14+) in plain arithmetic, for the merged export: each row of oft_R fills the strict
/// upper triangle of a b x b matrix U (torch.triu_indices(b, b, 1) order, row-major), Q = U - U^T, and the block is
/// I + 2 (Q + ... + Q^(n-2)) + Q^(n-1) (the truncated Neumann series of (I + Q)(I - Q)^-1 that current PEFT uses)
/// or, without the series, (I - Q)(I + Q)^-1. Computed in double precision.
/// </summary>
public static class OftRotation
{
    /// <summary>b(b-1)/2: the strict upper triangle of a b x b block.</summary>
    public static long TriangleLength(int blockSize) => (long)blockSize * (blockSize - 1) / 2;

    /// <summary>One block [b, b], row-major, from the triangle row starting at <paramref name="offset"/> of <paramref name="weights"/>.</summary>
    public static double[] Block(ReadOnlySpan<float> weights, long offset, int b, bool neumann, int terms)
    {
        var q = new double[b * b];
        long k = offset;
        for (int i = 0; i < b; i++)
            for (int j = i + 1; j < b; j++)
            {
                double v = weights[checked((int)k++)];
                q[i * b + j] = v;
                q[j * b + i] = -v;
            }
        return neumann ? NeumannSeries(q, b, terms) : Cayley(q, b);
    }

    /// <summary>I + 2 sum_{k=1}^{n-2} Q^k + Q^(n-1).</summary>
    private static double[] NeumannSeries(double[] q, int b, int terms)
    {
        var r = Identity(b);
        var power = Identity(b);
        for (int k = 1; k <= terms - 1; k++)
        {
            power = Multiply(power, q, b);
            double coefficient = k == terms - 1 ? 1 : 2;
            for (int e = 0; e < r.Length; e++) r[e] += coefficient * power[e];
        }
        return r;
    }

    /// <summary>
    /// (I - Q)(I + Q)^-1 of a skew-symmetric Q [b, b] (row-major; BOFT's blocks too), by Gauss-Jordan elimination of
    /// X (I + Q) = I - Q written as (I + Q)^T X^T = (I - Q)^T.
    /// </summary>
    public static double[] Cayley(double[] q, int b)
    {
        // (I + Q)^T = I - Q and (I - Q)^T = I + Q for a skew-symmetric Q: solve (I - Q) Y = (I + Q), then X = Y^T.
        var a = new double[b * b];
        var y = new double[b * b];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++)
            {
                double id = i == j ? 1 : 0;
                a[i * b + j] = id - q[i * b + j];
                y[i * b + j] = id + q[i * b + j];
            }
        for (int col = 0; col < b; col++)
        {
            int pivot = col;
            for (int row = col + 1; row < b; row++)
                if (Math.Abs(a[row * b + col]) > Math.Abs(a[pivot * b + col])) pivot = row;
            if (pivot != col)
                for (int j = 0; j < b; j++)
                {
                    (a[col * b + j], a[pivot * b + j]) = (a[pivot * b + j], a[col * b + j]);
                    (y[col * b + j], y[pivot * b + j]) = (y[pivot * b + j], y[col * b + j]);
                }
            double d = a[col * b + col];
            for (int j = 0; j < b; j++) { a[col * b + j] /= d; y[col * b + j] /= d; }
            for (int row = 0; row < b; row++)
            {
                if (row == col) continue;
                double f = a[row * b + col];
                if (f == 0) continue;
                for (int j = 0; j < b; j++) { a[row * b + j] -= f * a[col * b + j]; y[row * b + j] -= f * y[col * b + j]; }
            }
        }
        var x = new double[b * b];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++) x[i * b + j] = y[j * b + i];
        return x;
    }

    private static double[] Identity(int b)
    {
        var m = new double[b * b];
        for (int i = 0; i < b; i++) m[i * b + i] = 1;
        return m;
    }

    private static double[] Multiply(double[] x, double[] y, int b)
    {
        var m = new double[b * b];
        for (int i = 0; i < b; i++)
            for (int k = 0; k < b; k++)
            {
                double xik = x[i * b + k];
                if (xik == 0) continue;
                for (int j = 0; j < b; j++) m[i * b + j] += xik * y[k * b + j];
            }
        return m;
    }
}
