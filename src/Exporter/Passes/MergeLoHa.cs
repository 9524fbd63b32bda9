using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// PEFT's LoHa merge (loha/layer.py get_delta_weight): W' = W + (w1_a @ w1_b) * (w2_a @ w2_b) * alpha / r on each
/// target's nn.Linear weight.
/// </summary>
public sealed class MergeLoHa : MergeDelta
{
    private MergeLoHa(WeightSource inner) : base(inner) { }

    /// <summary>Reads and checks every target's four factors and wraps <paramref name="weights"/> with the merge.</summary>
    public static MergeLoHa Apply(LoHaConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeLoHa(weights);
        foreach (var t in config.FindTargets(arch))
        {
            var f = config.ExpectedTensors(t).Select(e => adapter.Read(e.Key, e.Shape, e.Detail)).ToArray();
            pass.Add(t, new LoHaDelta(f[0], f[1], f[2], f[3], t.Rank, checked((int)t.Linear.InFeatures), t.Scaling), adapter.Dir);
        }
        return pass;
    }
}

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
