namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// (w1_a @ w1_b) * (w2_a @ w2_b) * scale, element by element: each product's sum over the rank in order in float32
/// (fused multiply-adds), as PEFT's float32 matmuls compute them up to summation order.
/// </summary>
public sealed class LoHaDelta(float[] w1A, float[] w1B, float[] w2A, float[] w2B, int rank, int inFeatures, double scale) : IDeltaWeight
{
    private readonly float _scale = (float)scale;

    public void AddTo(Span<float> w, long start)
    {
        for (int j = 0; j < w.Length; j++)
        {
            long e = start + j;
            long row = e / inFeatures;
            int col = (int)(e % inFeatures);
            float h1 = 0, h2 = 0;
            for (int k = 0; k < rank; k++)
            {
                h1 = MathF.FusedMultiplyAdd(w1A[row * rank + k], w1B[(long)k * inFeatures + col], h1);
                h2 = MathF.FusedMultiplyAdd(w2A[row * rank + k], w2B[(long)k * inFeatures + col], h2);
            }
            w[j] += h1 * h2 * _scale;
        }
    }
}
