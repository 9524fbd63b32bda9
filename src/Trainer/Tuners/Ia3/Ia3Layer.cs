using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Ia3;

/// <summary>
/// PEFT 0.7.1's ia3.Linear around one base linear: a learned vector ia3_l scales the module's output
/// (base(x) * l, bias included; l is [out, 1]) or, for feed-forward modules, its input (base(x * l); l is [1, in]).
/// Shapes follow in/out features, so GPT-2's Conv1D modules need nothing special once their weight is [out, in].
/// </summary>
public sealed class Ia3Layer : InjectedLayer
{
    /// <summary>PEFT adds this to ia3_l before dividing it back out, so a zero entry does not divide by zero.</summary>
    private const double UnmergeEpsilon = 1e-8;

    public Ia3Layer(TargetMatch target, bool initIa3Weights, Device device) : base(target)
    {
        using (no_grad())
        {
            // update_layer draws randn first and overwrites it with ones when init_ia3_weights is true.
            Scale = target.IsFeedforward
                ? randn(1, target.Linear.InFeatures, device: device)
                : randn(target.Linear.OutFeatures, 1, device: device);
            if (initIa3Weights) Scale.FillWith(1.0);
        }
        // The layer owns its vector for the model's lifetime, whatever dispose scope the caller is in.
        Scale.DetachFromDisposeScope().requires_grad_(true);
        Parameters = [new(AdapterFormat.Ia3Vector, null, Scale)];
    }

    /// <summary>ia3_l: [1, in] for feed-forward modules, [out, 1] otherwise.</summary>
    public Tensor Scale { get; }

    public bool IsFeedforward => Target.IsFeedforward;

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x) => IsFeedforward
        ? layer.BaseForward(x * Scale.flatten())
        : layer.BaseForward(x) * Scale.flatten();

    /// <summary>
    /// Rows of W (and the bias) for output scaling, columns of W for input scaling; a feed-forward module's bias is
    /// added after the scaled input, so it stays.
    /// </summary>
    protected override void MergeInto(LinearLayer layer)
    {
        layer.Weight.mul_(Scale);
        if (!IsFeedforward && layer.Bias is { } bias) bias.mul_(Scale.reshape(bias.shape));
    }

    protected override void UnmergeFrom(LinearLayer layer)
    {
        using var divisor = Scale.Plus(UnmergeEpsilon);
        layer.Weight.div_(divisor);
        if (!IsFeedforward && layer.Bias is { } bias) bias.div_(divisor.reshape(bias.shape));
    }
}
