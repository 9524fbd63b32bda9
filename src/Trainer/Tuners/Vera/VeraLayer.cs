using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Vera;

/// <summary>
/// PEFT's vera.Linear: out = base(x) + lambda_b * linear(lambda_d * linear(x, vera_A[:, :in]), vera_B[:out]);
/// merged as W += (lambda_b[:, None] * vera_B[:out]) @ (lambda_d[:, None] * vera_A[:, :in]). A new adapter starts
/// with lambda_b = 0 and lambda_d = d_initial (init_weights true), else lambda_b = 1 and lambda_d ~ N(0, 1).
/// </summary>
public sealed class VeraLayer : InjectedLayer
{
    private readonly VeraConfig _config;
    private readonly VeraProjections _projections;
    private readonly Func<bool> _training;

    public VeraLayer(TargetMatch target, VeraConfig config, VeraProjections projections, Func<bool> training, Device device) : base(target)
    {
        _config = config;
        _projections = projections;
        _training = training;
        long outF = target.Linear.OutFeatures;
        using (no_grad())
        {
            // update_layer: lambda_b ones, lambda_d randn (drawn either way); init_weights then resets them to 0 and d_initial.
            LambdaB = ones(outF, device: device);
            LambdaD = randn(target.Rank, device: device);
            if (config.InitWeights)
            {
                LambdaB.zero_();
                LambdaD.FillWith(config.DInitial);
            }
        }
        LambdaB.DetachFromDisposeScope().requires_grad_(true);
        LambdaD.DetachFromDisposeScope().requires_grad_(true);
        Parameters = [new(VeraConfig.LambdaB, null, LambdaB), new(VeraConfig.LambdaD, null, LambdaD)];
    }

    /// <summary>vera_lambda_b [out].</summary>
    public Tensor LambdaB { get; }

    /// <summary>vera_lambda_d [r].</summary>
    public Tensor LambdaD { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    private Tensor SlicedA() => _projections.A.narrow(1, 0, Target.Linear.InFeatures);
    private Tensor SlicedB() => _projections.B.narrow(0, 0, Target.Linear.OutFeatures);

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        if (_training() && _config.VeraDropout > 0)
            throw new PeftOnnxException($"{_config.SourcePath}: vera_dropout = {_config.VeraDropout.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not supported for training VERA adapters (expected 0.0)");
        using var scope = NewDisposeScope();
        var a = SlicedA();
        var b = SlicedB();
        var inner = LambdaD.mul(nn.functional.linear(x, a));
        return layer.BaseForward(x).Plus(LambdaB.mul(nn.functional.linear(inner, b))).MoveToOuterDisposeScope();
    }

    /// <summary>get_delta_weight: [out, in].</summary>
    public Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        var b = LambdaB.unsqueeze(-1).mul(SlicedB());
        var a = LambdaD.unsqueeze(-1).mul(SlicedA());
        return b.matmul(a).MoveToOuterDisposeScope();
    }

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
}
