using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.FourierFt;

/// <summary>
/// PEFT's fourierft.FourierFTLayer: out = base(x) + x @ delta^T, delta [out, in] = Re(ifft2(S)) * scaling with the
/// dense spectrum S holding fourierft_spectrum at the positions torch.randperm drew from random_loc_seed
/// (<see cref="FourierFtPositions"/>). Merged as W += delta (the store holds Conv1D weights as [out, in] too). A new spectrum is drawn
/// from N(0, 1) unless init_weights is true (then zero).
/// </summary>
public sealed class FourierFtLayer : InjectedLayer
{
    private readonly long[] _flatPositions;

    public FourierFtLayer(TargetMatch target, FourierFtConfig config, Device device) : base(target)
    {
        _flatPositions = config.PositionsFor(target).Select(p => (long)p.Row * target.Linear.InFeatures + p.Column).ToArray();
        using (no_grad())
        {
            Spectrum = randn(target.Rank, device: device);
            if (config.InitWeights) Spectrum.zero_();
        }
        Spectrum.DetachFromDisposeScope().requires_grad_(true);
        Parameters = [new(FourierFtConfig.Spectrum, null, Spectrum)];
    }

    /// <summary>fourierft_spectrum [n_frequency].</summary>
    public Tensor Spectrum { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    /// <summary>get_delta_weight: [out, in].</summary>
    public Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        long outF = Target.Linear.OutFeatures, inF = Target.Linear.InFeatures;
        var index = tensor(_flatPositions, device: Spectrum.device);
        var dense = zeros(outF * inF, dtype: Spectrum.dtype, device: Spectrum.device).scatter_add(0, index, Spectrum).view(outF, inF);
        return fft.ifft2(dense).real.Times(Target.Scaling).MoveToOuterDisposeScope();
    }

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        using var scope = NewDisposeScope();
        var delta = DeltaWeight();
        return layer.BaseForward(x).Plus(nn.functional.linear(x.to(delta.dtype), delta)).MoveToOuterDisposeScope();
    }

    protected override void MergeInto(LinearLayer layer)
    {
        using var scope = NewDisposeScope();
        var delta = DeltaWeight();
        layer.Weight.PlusInPlace(delta);
    }

    protected override void UnmergeFrom(LinearLayer layer)
    {
        using var scope = NewDisposeScope();
        var delta = DeltaWeight();
        layer.Weight.sub_(delta);
    }
}
