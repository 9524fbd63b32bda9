using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// FourierFT's merge as current PEFT does it (fourierft/layer.py merge): W' = W + Re(ifft2(S)) * scaling, transposed
/// onto GPT-2's Conv1D [in, out] weight (PEFT 0.13.2 cannot merge there; its unmerged outputs are what this equals).
/// The spectrum positions are recomputed from random_loc_seed (<see cref="FourierFtPositions"/>).
/// </summary>
public sealed class MergeFourierFt : MergeDelta
{
    private MergeFourierFt(WeightSource inner) : base(inner) { }

    /// <summary>Reads and checks every target's fourierft_spectrum [n_frequency] and wraps <paramref name="weights"/>.</summary>
    public static MergeFourierFt Apply(FourierFtConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeFourierFt(weights);
        foreach (var t in config.FindTargets(arch))
        {
            var expected = config.SpectrumTensor(t);
            var spectrum = adapter.Read(expected.Key, expected.Shape, expected.Detail);
            var delta = new FourierFtDelta(spectrum, config.PositionsFor(t), checked((int)t.Linear.OutFeatures), checked((int)t.Linear.InFeatures), t.Scaling);
            pass.Add(t, new SpectrumDelta(delta, t.Linear.IsConv1D), adapter.Dir);
        }
        return pass;
    }
}

/// <summary>The FourierFT delta added element by element, in the stored layout ([out, in], or [in, out] for Conv1D).</summary>
public sealed class SpectrumDelta(FourierFtDelta delta, bool conv1D) : IDeltaWeight
{
    public void AddTo(Span<float> w, long start)
    {
        int columns = conv1D ? delta.OutFeatures : delta.InFeatures;
        for (int j = 0; j < w.Length; j++)
        {
            long e = start + j;
            int stored = (int)(e / columns), col = (int)(e % columns);
            w[j] = (float)(w[j] + (conv1D ? delta.At(col, stored) : delta.At(stored, col)));
        }
    }
}
