using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Lycoris;

/// <summary>
/// PEFT's LycorisLayer forward for an nn.Linear: out = base(x) + linear(x, delta), the delta weight [out, in] built
/// from the method's factors at each call (as PEFT does), and merged as W += delta. Rank and module dropout change
/// training only; they are not implemented, so training with either set is refused.
/// </summary>
public abstract class LycorisLayer : InjectedLayer
{
    private readonly Func<bool> _training;
    private readonly LycorisConfig _config;

    protected LycorisLayer(TargetMatch target, LycorisConfig config, Func<bool> training) : base(target)
    {
        _config = config;
        _training = training;
    }

    /// <summary>alpha / r for this module (alpha_pattern / rank_pattern applied).</summary>
    public double Scaling => Target.Scaling;

    /// <summary>get_delta_weight: the weight change [out, in], scale applied.</summary>
    public abstract Tensor DeltaWeight();

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        if (_training())
        {
            if (_config.RankDropout > 0) throw Refused("rank_dropout", _config.RankDropout);
            if (_config.ModuleDropout > 0) throw Refused("module_dropout", _config.ModuleDropout);
        }
        using var delta = DeltaWeight();
        return layer.BaseForward(x).Plus(nn.functional.linear(x, delta));
    }

    private PeftOnnxException Refused(string key, double value) =>
        new($"{_config.SourcePath}: {key} = {value.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not supported for training {_config.PeftType} adapters (expected 0.0)");

    protected override void MergeInto(LinearLayer layer)
    {
        using var delta = DeltaWeight();
        layer.Weight.PlusInPlace(delta);
    }

    protected override void UnmergeFrom(LinearLayer layer)
    {
        using var delta = DeltaWeight();
        layer.Weight.sub_(delta);
    }

    /// <summary>A new trainable factor, owned by the layer for the model's lifetime.</summary>
    protected static Tensor Factor(long rows, long cols, Device device) => empty(rows, cols, device: device);

    /// <summary>nn.init.kaiming_uniform_(t, a=sqrt(5)), nn.Parameter's default init that PEFT uses for these factors.</summary>
    protected static void KaimingUniform(Tensor t) => nn.init.kaiming_uniform_(t, Math.Sqrt(5));

    /// <summary>Marks the factors trainable and detaches them from the caller's dispose scope.</summary>
    protected static void Own(IEnumerable<Tensor> factors)
    {
        foreach (var t in factors) t.DetachFromDisposeScope().requires_grad_(true);
    }
}
