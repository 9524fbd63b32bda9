namespace Peft.Onnx.Core.Peft;

/// <summary>
/// BOFT's rotation in plain arithmetic, for the merged export: for each butterfly factor n, each block of boft_R[n]
/// becomes its Cayley transform (I - S)(I + S)^-1 of S = (A - A^T) / 2 (<see cref="OftRotation.Cayley"/>), the blocks
/// form a block-diagonal B_n, and M_n = P_n B_n P_n^T with P_n the butterfly permutation (<see cref="BoftButterfly"/>);
/// R = M_(N-1) ... M_0. A weight row v [in] becomes v @ R^T = v @ M_0^T ... M_(N-1)^T. Double precision.
/// </summary>
public sealed class BoftRotation
{
    private readonly double[][][] _blocks;
    private readonly int[][] _permutations;
    private readonly int _blockSize;

    /// <summary>From boft_R [factors, blocks, b, b] (row-major) of one module with <paramref name="inFeatures"/> inputs.</summary>
    public BoftRotation(ReadOnlySpan<float> r, int factors, int blocks, int blockSize, int inFeatures)
    {
        _blockSize = blockSize;
        InFeatures = inFeatures;
        int b = blockSize;
        _blocks = new double[factors][][];
        _permutations = new int[factors][];
        for (int n = 0; n < factors; n++)
        {
            _permutations[n] = BoftButterfly.Permutation(inFeatures, blockSize, n, factors);
            _blocks[n] = new double[blocks][];
            for (int d = 0; d < blocks; d++)
            {
                var a = r.Slice((n * blocks + d) * b * b, b * b);
                var skew = new double[b * b];
                for (int i = 0; i < b; i++)
                    for (int j = 0; j < b; j++) skew[i * b + j] = 0.5 * ((double)a[i * b + j] - a[j * b + i]);
                _blocks[n][d] = OftRotation.Cayley(skew, b);
            }
        }
    }

    public int InFeatures { get; }

    /// <summary>The block [b, b] (row-major) of factor <paramref name="factor"/>, for tests.</summary>
    public double[] Block(int factor, int block) => _blocks[factor][block];

    /// <summary>v @ R^T in place: per factor, u[perm[j]] = v[j], w = u @ B^T (block by block), v[i] = w[perm[i]].</summary>
    public void Rotate(Span<double> v)
    {
        int b = _blockSize;
        var u = new double[v.Length];
        var w = new double[v.Length];
        for (int n = 0; n < _blocks.Length; n++)
        {
            var perm = _permutations[n];
            for (int j = 0; j < v.Length; j++) u[perm[j]] = v[j];
            for (int d = 0; d < _blocks[n].Length; d++)
            {
                var block = _blocks[n][d];
                int offset = d * b;
                for (int i = 0; i < b; i++)
                {
                    double sum = 0;
                    for (int c = 0; c < b; c++) sum += block[i * b + c] * u[offset + c];
                    w[offset + i] = sum;
                }
            }
            for (int i = 0; i < v.Length; i++) v[i] = w[perm[i]];
        }
    }
}
