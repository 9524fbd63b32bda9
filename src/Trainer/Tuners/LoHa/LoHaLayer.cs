using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.Lycoris;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.LoHa;

/// <summary>
/// PEFT's loha.Linear: delta = (hada_w1_a @ hada_w1_b) * (hada_w2_a @ hada_w2_b) * alpha / r, w*_a [out, r] and
/// w*_b [r, in]. A new adapter starts at zero (hada_w2_b = 0) unless init_weights is false.
/// </summary>
public sealed class LoHaLayer : LycorisLayer
{
    public LoHaLayer(TargetMatch target, LoHaConfig config, Func<bool> training, Device device) : base(target, config, training)
    {
        long r = target.Rank, inF = target.Linear.InFeatures, outF = target.Linear.OutFeatures;
        using (no_grad())
        {
            // create_adapter_parameters allocates in this order; reset_adapter_parameters then draws in the same order.
            W1A = Factor(outF, r, device);
            W1B = Factor(r, inF, device);
            W2A = Factor(outF, r, device);
            W2B = Factor(r, inF, device);
            KaimingUniform(W1A);
            KaimingUniform(W1B);
            KaimingUniform(W2A);
            if (config.InitWeights) W2B.zero_();
            else KaimingUniform(W2B);
        }
        Own([W1A, W1B, W2A, W2B]);
        Parameters = [new(LoHaConfig.W1A, null, W1A), new(LoHaConfig.W1B, null, W1B), new(LoHaConfig.W2A, null, W2A), new(LoHaConfig.W2B, null, W2B)];
    }

    /// <summary>hada_w1_a [out, r].</summary>
    public Tensor W1A { get; }

    /// <summary>hada_w1_b [r, in].</summary>
    public Tensor W1B { get; }

    /// <summary>hada_w2_a [out, r].</summary>
    public Tensor W2A { get; }

    /// <summary>hada_w2_b [r, in].</summary>
    public Tensor W2B { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    public override Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        return W1A.matmul(W1B).mul(W2A.matmul(W2B)).Times(Scaling).MoveToOuterDisposeScope();
    }
}
