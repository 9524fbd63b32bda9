namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// Whole rows of an [out, in] weight times R^T for a block-diagonal R: row'[p b + i] = sum_j row[p b + j] R_p[i, j],
/// summed in double precision and rounded once to float32.
/// </summary>
public sealed class BlockRotation(double[][] blocks, int blockSize, int inFeatures)
{
    public int InFeatures => inFeatures;

    /// <summary>Rotates each row of <paramref name="rows"/> (a whole number of rows) in place.</summary>
    public void RotateRows(Span<float> rows)
    {
        int b = blockSize;
        Span<double> input = stackalloc double[b];
        for (int offset = 0; offset < rows.Length; offset += inFeatures)
            for (int p = 0; p < blocks.Length; p++)
            {
                var block = blocks[p];
                var segment = rows.Slice(offset + p * b, b);
                for (int j = 0; j < b; j++) input[j] = segment[j];
                for (int i = 0; i < b; i++)
                {
                    double sum = 0;
                    for (int j = 0; j < b; j++) sum += input[j] * block[i * b + j];
                    segment[i] = (float)sum;
                }
            }
    }
}
