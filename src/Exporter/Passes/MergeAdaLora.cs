using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// PEFT's AdaLoRA merge (adalora/layer.py get_delta_weight): W' = W + lora_B @ (lora_A * lora_E) * lora_alpha /
/// (ranknum + 1e-5), transposed onto a Conv1D weight.
/// </summary>
public sealed class MergeAdaLora : MergeDelta
{
    private MergeAdaLora(WeightSource inner) : base(inner) { }

    /// <summary>Reads and checks every target's three factors and wraps <paramref name="weights"/> with the merge.</summary>
    public static MergeAdaLora Apply(AdaLoraConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeAdaLora(weights);
        foreach (var t in config.FindTargets(arch))
        {
            var f = config.ExpectedTensors(t).Select(e => adapter.Read(e.Key, e.Shape, e.Detail)).ToArray();
            float[] a = f[0], b = f[1], singular = f[2];
            int r = t.Rank, inF = checked((int)t.Linear.InFeatures), outF = checked((int)t.Linear.OutFeatures);
            var scaledA = new float[a.LongLength];
            for (int k = 0; k < r; k++)
                for (int i = 0; i < inF; i++) scaledA[(long)k * inF + i] = a[(long)k * inF + i] * singular[k];
            pass.Add(t, new LowRankDelta(scaledA, b, r, inF, outF, t.Scaling, t.Linear.IsConv1D), adapter.Dir);
        }
        return pass;
    }
}
