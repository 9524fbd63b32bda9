using Peft.Onnx.Core.Peft;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>kron(w1 [OutL, InM], w2 [OutK, InN]) * scale as an [OutL * OutK, InM * InN] weight change.</summary>
public sealed class KroneckerDelta(float[] w1, float[] w2, LoKrFactors factors, double scale) : IDeltaWeight
{
    private readonly float _scale = (float)scale;
    private readonly int _in = factors.InM * factors.InN;

    public void AddTo(Span<float> w, long start)
    {
        for (int j = 0; j < w.Length; j++)
        {
            long e = start + j;
            int row = (int)(e / _in), col = (int)(e % _in);
            float a = w1[(row / factors.OutK) * factors.InM + col / factors.InN];
            float b = w2[(row % factors.OutK) * factors.InN + col % factors.InN];
            w[j] += a * b * _scale;
        }
    }
}
