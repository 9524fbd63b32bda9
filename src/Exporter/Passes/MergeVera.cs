using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// PEFT's VeRA merge (vera/layer.py get_delta_weight): W' = W + (lambda_b[:, None] * vera_B[:out]) @
/// (lambda_d[:, None] * vera_A[:, :in]), transposed onto a Conv1D weight; the shared projections are read once.
/// </summary>
public sealed class MergeVera : MergeDelta
{
    private MergeVera(WeightSource inner) : base(inner) { }

    /// <summary>Reads and checks the shared projections and every target's two vectors; wraps <paramref name="weights"/> with the merge.</summary>
    public static MergeVera Apply(VeraConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeVera(weights);
        var targets = config.FindTargets(arch);
        var shared = config.SharedTensors(targets);
        var sharedA = adapter.Read(shared[0].Key, shared[0].Shape, shared[0].Detail);
        var sharedB = adapter.Read(shared[1].Key, shared[1].Shape, shared[1].Detail);
        int r = config.R, maxIn = checked((int)shared[0].Shape[1]);
        foreach (var t in targets)
        {
            var e = config.ExpectedTensors(t);
            var lambdaB = adapter.Read(e[0].Key, e[0].Shape, e[0].Detail);
            var lambdaD = adapter.Read(e[1].Key, e[1].Shape, e[1].Detail);
            int inF = checked((int)t.Linear.InFeatures), outF = checked((int)t.Linear.OutFeatures);
            var a = new float[(long)r * inF];
            for (int k = 0; k < r; k++)
                for (int i = 0; i < inF; i++) a[(long)k * inF + i] = lambdaD[k] * sharedA[(long)k * maxIn + i];
            var b = new float[(long)outF * r];
            for (int o = 0; o < outF; o++)
                for (int k = 0; k < r; k++) b[(long)o * r + k] = lambdaB[o] * sharedB[(long)o * r + k];
            pass.Add(t, new LowRankDelta(a, b, r, inF, outF, 1.0, t.Linear.IsConv1D), adapter.Dir);
        }
        return pass;
    }
}
