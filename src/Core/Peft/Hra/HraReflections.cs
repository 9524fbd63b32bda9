namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's HRA reflections in plain arithmetic, for the merged export: a weight row v [in] becomes v @ H_1 ... H_r,
/// applied one reflection at a time (v - 2 (v . u) u for each unit column u of hra_u), or with apply_GS
/// v - 2 sum_j (v . e_j) e_j over the Gram-Schmidt orthonormalised columns e_j. Double precision.
/// </summary>
public sealed class HraReflections
{
    private readonly double[][] _units;
    private readonly bool _orthonormal;

    /// <summary>From hra_u [in, r] (row-major) of one module.</summary>
    public HraReflections(ReadOnlySpan<float> u, int inFeatures, int rank, bool applyGs)
    {
        _orthonormal = applyGs;
        _units = new double[rank][];
        for (int i = 0; i < rank; i++)
        {
            var column = new double[inFeatures];
            for (int k = 0; k < inFeatures; k++) column[k] = u[k * rank + i];
            if (applyGs)
                for (int j = 0; j < i; j++)
                {
                    double dot = Dot(_units[j], column);
                    for (int k = 0; k < inFeatures; k++) column[k] -= dot * _units[j][k];
                }
            double norm = Math.Sqrt(Dot(column, column));
            for (int k = 0; k < inFeatures; k++) column[k] /= norm;
            _units[i] = column;
        }
    }

    public int InFeatures => _units.Length == 0 ? 0 : _units[0].Length;

    /// <summary>v @ H_1 ... H_r in place.</summary>
    public void Reflect(Span<double> v)
    {
        if (_orthonormal)
        {
            Span<double> dots = stackalloc double[_units.Length];
            for (int j = 0; j < _units.Length; j++) dots[j] = Dot(_units[j], v);
            for (int j = 0; j < _units.Length; j++)
                for (int k = 0; k < v.Length; k++) v[k] -= 2 * dots[j] * _units[j][k];
            return;
        }
        foreach (var u in _units)
        {
            double dot = Dot(u, v);
            for (int k = 0; k < v.Length; k++) v[k] -= 2 * dot * u[k];
        }
    }

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double s = 0;
        for (int k = 0; k < a.Length; k++) s += a[k] * b[k];
        return s;
    }
}
