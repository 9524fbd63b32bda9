using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Lora;

/// <summary>
/// PEFT's lora.Linear around one base linear: out = base(x) + lora_B(lora_A(dropout(x))) * scaling, lora_B with a
/// bias when lora_bias is set (the bias is scaled with the branch). With use_dora (DoRA) the adapted weight
/// W + scaling * B @ A is renormalised per output row to the trained magnitude m: PEFT's DoraLinearLayer adds
/// (m / ||W + s B A|| - 1) * x W^T + (m / ||.||) * s * x A^T B^T to the base output, the norm detached from the graph
/// and the base bias left unscaled.
/// A is [r, in] and B is [out, r] (nn.Linear layout) for every family: GPT-2's Conv1D weight is already [out, in]
/// in the trainer, so fan_in_fan_out needs no transpose here (only the saved checkpoint layout differs).
/// </summary>
public sealed class LoraLayer : InjectedLayer
{
    private readonly Func<bool> _training;

    /// <summary>DoRA's m / ||W + s B A|| per output while merged: unmerging divides by the factor the merge applied.</summary>
    private Tensor? _mergedDoraFactor;

    /// <param name="target">The module, with its rank, alpha and scaling already resolved (rank/alpha patterns, rsLoRA).</param>
    /// <param name="config">init_lora_weights, lora_dropout, use_dora and lora_bias.</param>
    /// <param name="baseLayer">The wrapped module: DoRA's magnitude starts as the row norms of its adapted weight.</param>
    /// <param name="training">The model's train/eval flag, read at each forward (dropout).</param>
    public LoraLayer(TargetMatch target, LoraConfig config, LinearLayer baseLayer, Func<bool> training) : base(target)
    {
        _training = training;
        var init = config.InitLoraWeights;
        var device = baseLayer.Weight.device;
        Dropout = config.LoraDropout;
        Scaling = target.Scaling;
        UsesDora = config.UsesDora;
        using (no_grad())
        {
            // update_layer builds lora_A = nn.Linear(in, r) and lora_B = nn.Linear(r, out, bias=lora_bias): each gets
            // nn.Linear's default init first (kaiming_uniform_ with a = sqrt(5), then U(-1/sqrt(r), 1/sqrt(r)) for
            // B's bias), drawn in this order.
            A = empty(target.Rank, target.Linear.InFeatures, device: device);
            B = empty(target.Linear.OutFeatures, target.Rank, device: device);
            nn.init.kaiming_uniform_(A, Math.Sqrt(5));
            nn.init.kaiming_uniform_(B, Math.Sqrt(5));
            if (config.HasLoraBias)
            {
                var bound = 1 / Math.Sqrt(target.Rank);
                BBias = empty(target.Linear.OutFeatures, device: device);
                nn.init.uniform_(BBias, -bound, bound);
            }
            // reset_lora_parameters runs only when init_lora_weights is truthy; false keeps both random.
            if (init.Flag == true) nn.init.kaiming_uniform_(A, Math.Sqrt(5));
            else if (init.Method == "gaussian") nn.init.normal_(A, 0, 1.0 / target.Rank);
            else if (init.Method == "loftq")
                throw new PeftOnnxException("init_lora_weights = \"loftq\" needs LoftQ quantisation, which the trainer does not implement");
            if (init.Flag == true || init.Method == "gaussian")
            {
                B.zero_();
                BBias?.zero_();
            }
            // dora_init: the magnitude starts as ||W + s B A|| per output, so a fresh DoRA adapter changes nothing
            // beyond what its LoRA part does.
            if (UsesDora) Magnitude = WeightNorm(baseLayer.Weight);
        }
        // The layer owns its tensors for the model's lifetime, whatever dispose scope the caller is in.
        var parameters = new List<AdapterParameter>
        {
            new(AdapterFormat.LoraA, AdapterFormat.LinearWeight, Own(A)),
            new(AdapterFormat.LoraB, AdapterFormat.LinearWeight, Own(B)),
        };
        if (BBias is not null) parameters.Add(new(AdapterFormat.LoraB, AdapterFormat.LinearBias, Own(BBias)));
        if (Magnitude is not null) parameters.Add(new(AdapterFormat.LoraMagnitude, AdapterFormat.LinearWeight, Own(Magnitude), LeafSaved: false));
        Parameters = parameters;
    }

    private static Tensor Own(Tensor t) => t.DetachFromDisposeScope().requires_grad_(true);

    /// <summary>lora_A.weight: [r, in].</summary>
    public Tensor A { get; }

    /// <summary>lora_B.weight: [out, r].</summary>
    public Tensor B { get; }

    /// <summary>lora_B.bias: [out] with lora_bias, else null.</summary>
    public Tensor? BBias { get; }

    /// <summary>DoRA's lora_magnitude_vector: [out] with use_dora, else null.</summary>
    public Tensor? Magnitude { get; }

    public bool UsesDora { get; }

    /// <summary>lora_alpha / r (lora_alpha / sqrt(r) with use_rslora).</summary>
    public double Scaling { get; }

    public double Dropout { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        var result = layer.BaseForward(x);
        var dropped = _training() && Dropout > 0;
        var input = dropped ? nn.functional.dropout(x, Dropout, true) : x;
        var lora = nn.functional.linear(nn.functional.linear(input, A), B, BBias);
        if (!UsesDora) return result.Plus(lora.Times(Scaling));
        // DoraLinearLayer.forward: the norm is a constant of the step (detached); with dropout active the base term is
        // recomputed on the dropped input, otherwise it is the base output without its bias.
        using var norm = DetachedNorm(layer.Weight);
        var factor = Magnitude!.div(norm);
        var baseTerm = dropped ? nn.functional.linear(input, layer.Weight) : layer.Bias is { } bias ? result.sub(bias) : result;
        return result.Plus(factor.Plus(-1.0).mul(baseTerm)).Plus(factor.mul(lora.Times(Scaling)));
    }

    private Tensor DetachedNorm(Tensor weight)
    {
        using var _ = no_grad();
        return WeightNorm(weight);
    }

    /// <summary>get_weight_norm: ||W + s * B @ A|| over in_features for each output, [out].</summary>
    private Tensor WeightNorm(Tensor weight)
    {
        using var delta = DeltaWeight();
        using var adapted = weight.Plus(delta);
        using var squares = adapted.mul(adapted);
        using var sums = squares.sum(1);
        return sums.sqrt();
    }

    /// <summary>get_delta_weight: B @ A * scaling, [out, in] like the trainer's weight.</summary>
    public Tensor DeltaWeight() => B.matmul(A).Times(Scaling);

    /// <summary>
    /// W' = W + s B A and bias' = bias + s b_B; with DoRA W' = (m / ||W + s B A||) * (W + s B A) row by row. PEFT
    /// refuses lora_bias on a module without a bias (there is nothing to merge it into).
    /// </summary>
    public override void CheckMergeable(LinearLayer layer)
    {
        if (BBias is not null && layer.Bias is null)
            throw new PeftOnnxException($"cannot merge LoRA with lora_bias = true into '{Path}': the base layer has no bias (PEFT refuses this merge too; export adds the bias instead)");
    }

    protected override void MergeInto(LinearLayer layer)
    {
        CheckMergeable(layer);
        using var delta = DeltaWeight();
        if (UsesDora)
        {
            using var norm = WeightNorm(layer.Weight);
            _mergedDoraFactor = Magnitude!.div(norm).unsqueeze(1).DetachFromDisposeScope();
            layer.Weight.PlusInPlace(delta).mul_(_mergedDoraFactor);
        }
        else layer.Weight.PlusInPlace(delta);
        if (BBias is not null) layer.Bias!.PlusInPlace(BBias, Scaling);
    }

    protected override void UnmergeFrom(LinearLayer layer)
    {
        using var delta = DeltaWeight();
        if (_mergedDoraFactor is not null)
        {
            layer.Weight.div_(_mergedDoraFactor);
            _mergedDoraFactor.Dispose();
            _mergedDoraFactor = null;
        }
        layer.Weight.sub_(delta);
        if (BBias is not null) layer.Bias!.PlusInPlace(BBias, -Scaling);
    }
}
