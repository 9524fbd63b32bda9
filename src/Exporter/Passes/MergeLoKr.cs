using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// PEFT's LoKr merge (lokr/layer.py get_delta_weight): W' = W + kron(w1, w2) * alpha / r on each target's nn.Linear
/// weight, w1 and w2 whole or as rank-r products (<see cref="LoKrFactors"/>).
/// </summary>
public sealed class MergeLoKr : MergeDelta
{
    private MergeLoKr(WeightSource inner) : base(inner) { }

    /// <summary>Reads and checks every target's factors (their Kronecker product must be the weight's shape) and wraps <paramref name="weights"/>.</summary>
    public static MergeLoKr Apply(LoKrConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeLoKr(weights);
        foreach (var t in config.FindTargets(arch))
        {
            var f = config.FactorsFor(t);
            var tensors = config.ExpectedTensors(t).ToDictionary(e => e.Key, e => adapter.Read(e.Key, e.Shape, e.Detail), StringComparer.Ordinal);
            float[] Tensor(string name) => tensors[AdapterFormat.ModuleKey(t.Path, name)];
            var w1 = f.UseW1 ? Tensor(LoKrConfig.W1) : Product(Tensor(LoKrConfig.W1A), Tensor(LoKrConfig.W1B), f.OutL, f.Rank, f.InM);
            var w2 = f.UseW2 ? Tensor(LoKrConfig.W2) : Product(Tensor(LoKrConfig.W2A), Tensor(LoKrConfig.W2B), f.OutK, f.Rank, f.InN);
            pass.Add(t, new KroneckerDelta(w1, w2, f, t.Scaling), adapter.Dir);
        }
        return pass;
    }

    /// <summary>a [rows, r] @ b [r, cols] in float32, summed over r in order.</summary>
    private static float[] Product(float[] a, float[] b, int rows, int rank, int cols)
    {
        var result = new float[(long)rows * cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                float sum = 0;
                for (int k = 0; k < rank; k++) sum = MathF.FusedMultiplyAdd(a[i * rank + k], b[k * cols + j], sum);
                result[(long)i * cols + j] = sum;
            }
        return result;
    }
}
