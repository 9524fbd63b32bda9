using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.Lycoris;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.LoKr;

/// <summary>
/// PEFT's lokr.Linear: delta = kron(w1, w2) * alpha / r with w1 = lokr_w1 or lokr_w1_a @ lokr_w1_b and w2 = lokr_w2 or
/// lokr_w2_a @ lokr_w2_b (<see cref="LoKrFactors"/> says which). A new adapter starts at zero (w1 or w1_a = 0)
/// unless init_weights is false.
/// </summary>
public sealed class LoKrLayer : LycorisLayer
{
    private readonly Tensor? _w1, _w1A, _w1B, _w2, _w2A, _w2B;

    public LoKrLayer(TargetMatch target, LoKrConfig config, Func<bool> training, Device device) : base(target, config, training)
    {
        Factors = config.FactorsFor(target);
        var f = Factors;
        var parameters = new List<AdapterParameter>();
        using (no_grad())
        {
            // create_adapter_parameters allocates in this order; reset_adapter_parameters then draws in the same order.
            if (f.UseW1) parameters.Add(new(LoKrConfig.W1, null, _w1 = Factor(f.OutL, f.InM, device)));
            else
            {
                parameters.Add(new(LoKrConfig.W1A, null, _w1A = Factor(f.OutL, f.Rank, device)));
                parameters.Add(new(LoKrConfig.W1B, null, _w1B = Factor(f.Rank, f.InM, device)));
            }
            if (f.UseW2) parameters.Add(new(LoKrConfig.W2, null, _w2 = Factor(f.OutK, f.InN, device)));
            else
            {
                parameters.Add(new(LoKrConfig.W2A, null, _w2A = Factor(f.OutK, f.Rank, device)));
                parameters.Add(new(LoKrConfig.W2B, null, _w2B = Factor(f.Rank, f.InN, device)));
            }
            // reset_adapter_parameters: w1 (or w1_a) starts at zero so that kron(w1, w2) = 0, the rest draw in order;
            // with init_weights false every factor draws.
            var zeroed = config.InitWeights ? _w1 ?? _w1A : null;
            foreach (var p in parameters)
            {
                if (ReferenceEquals(p.Value, zeroed)) p.Value.zero_();
                else KaimingUniform(p.Value);
            }
        }
        Own(parameters.Select(p => p.Value));
        Parameters = parameters;
    }

    public LoKrFactors Factors { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    public override Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        var w1 = _w1 ?? _w1A!.matmul(_w1B!);
        var w2 = _w2 ?? _w2A!.matmul(_w2B!);
        return kron(w1, w2).Times(Scaling).MoveToOuterDisposeScope();
    }
}
