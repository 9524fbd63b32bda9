using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Lora;

/// <summary>
/// PEFT 0.7.1's lora.Linear around one base linear: out = base(x) + lora_B(lora_A(dropout(x))) * scaling.
/// A is [r, in] and B is [out, r] (nn.Linear layout) for every family: GPT-2's Conv1D weight is already [out, in]
/// in the trainer, so fan_in_fan_out needs no transpose here (only the saved checkpoint layout differs).
/// </summary>
public sealed class LoraLayer : InjectedLayer
{
    private readonly Func<bool> _training;

    /// <param name="target">The module, with its rank, alpha and scaling already resolved (rank/alpha patterns, rsLoRA).</param>
    /// <param name="init">init_lora_weights.</param>
    /// <param name="dropout">lora_dropout, applied to the adapter's input only while <paramref name="training"/> says so.</param>
    /// <param name="training">The model's train/eval flag, read at each forward.</param>
    /// <param name="device">Where the base weight lives.</param>
    public LoraLayer(TargetMatch target, InitLoraWeights init, double dropout, Func<bool> training, Device device) : base(target)
    {
        _training = training;
        Dropout = dropout;
        Scaling = target.Scaling;
        using (no_grad())
        {
            // update_layer builds lora_A = nn.Linear(in, r) and lora_B = nn.Linear(r, out) without bias: both get
            // nn.Linear's default init first (kaiming_uniform_ with a = sqrt(5)), drawn in this order.
            A = empty(target.Rank, target.Linear.InFeatures, device: device);
            B = empty(target.Linear.OutFeatures, target.Rank, device: device);
            nn.init.kaiming_uniform_(A, Math.Sqrt(5));
            nn.init.kaiming_uniform_(B, Math.Sqrt(5));
            // reset_lora_parameters runs only when init_lora_weights is truthy; false keeps both random.
            if (init.Flag == true) nn.init.kaiming_uniform_(A, Math.Sqrt(5));
            else if (init.Method == "gaussian") nn.init.normal_(A, 0, 1.0 / target.Rank);
            else if (init.Method == "loftq")
                throw new Core.PeftOnnxException("init_lora_weights = \"loftq\" needs LoftQ quantisation, which the trainer does not implement");
            if (init.Flag == true || init.Method == "gaussian") B.zero_();
        }
        // The layer owns its tensors for the model's lifetime, whatever dispose scope the caller is in.
        A.DetachFromDisposeScope().requires_grad_(true);
        B.DetachFromDisposeScope().requires_grad_(true);
        Parameters = [new(AdapterFormat.LoraA, AdapterFormat.LinearWeight, A), new(AdapterFormat.LoraB, AdapterFormat.LinearWeight, B)];
    }

    /// <summary>lora_A.weight: [r, in].</summary>
    public Tensor A { get; }

    /// <summary>lora_B.weight: [out, r].</summary>
    public Tensor B { get; }

    /// <summary>lora_alpha / r (lora_alpha / sqrt(r) with use_rslora).</summary>
    public double Scaling { get; }

    public double Dropout { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        var result = layer.BaseForward(x);
        var input = _training() && Dropout > 0 ? nn.functional.dropout(x, Dropout, true) : x;
        return result.Plus(nn.functional.linear(nn.functional.linear(input, A), B).Times(Scaling));
    }

    /// <summary>get_delta_weight: B @ A * scaling, [out, in] like the trainer's weight.</summary>
    public Tensor DeltaWeight() => B.matmul(A).Times(Scaling);

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
