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
