using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.AdaLora;

/// <summary>
/// PEFT's adalora.SVDLinear: out = base(x) + (x @ (lora_A * lora_E)^T @ lora_B^T) * lora_alpha / (ranknum + 1e-5),
/// lora_A [r, in], lora_E [r, 1], lora_B [out, r], ranknum = init_r as a float32 buffer. A new adapter starts with
/// E = 0 and A, B ~ N(0, 0.02) (init_lora_weights true).
/// </summary>
public sealed class AdaLoraLayer : InjectedLayer
{
    private readonly AdaLoraConfig _config;
    private readonly Func<bool> _training;

    public AdaLoraLayer(TargetMatch target, AdaLoraConfig config, Func<bool> training, Device device) : base(target)
    {
        _config = config;
        _training = training;
        long r = target.Rank, inF = target.Linear.InFeatures, outF = target.Linear.OutFeatures;
        using (no_grad())
        {
            // update_layer allocates A, E, B with randn in that order; reset_lora_parameters then zeros E and redraws A, B.
            A = randn(r, inF, device: device);
            E = randn(r, 1, device: device);
            B = randn(outF, r, device: device);
            if (InitsWeights(config))
            {
                E.zero_();
                nn.init.normal_(A, 0.0, 0.02);
                nn.init.normal_(B, 0.0, 0.02);
            }
        }
        foreach (var t in new[] { A, E, B }) t.DetachFromDisposeScope().requires_grad_(true);
        RankNum = (float)r;
        // named_parameters order: the ParameterDicts are created lora_E, lora_A, lora_B in AdaLoraLayer.__init__.
        Parameters = [new(AdaLoraConfig.E, null, E), new(AdaLoraConfig.A, null, A), new(AdaLoraConfig.B, null, B)];
    }

    private static bool InitsWeights(AdaLoraConfig config) =>
        config.InitLoraWeights is not { ValueKind: System.Text.Json.JsonValueKind.False };

    /// <summary>lora_A [r, in].</summary>
    public Tensor A { get; }

    /// <summary>lora_E [r, 1].</summary>
    public Tensor E { get; }

    /// <summary>lora_B [out, r].</summary>
    public Tensor B { get; }

    /// <summary>ranknum: the rank the scale divides by (init_r; not saved).</summary>
    public float RankNum { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    private Tensor ScaleInPlace(Tensor t)
    {
        // PEFT: (...) * lora_alpha / (ranknum + 1e-5), ranknum a float32 tensor.
        using var denominator = tensor(RankNum, float32, t.device).Plus(AdaLoraConfig.RankEpsilon);
        using var scaled = t.Times(_config.LoraAlpha);
        return scaled.div(denominator);
    }

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        if (_training() && _config.LoraDropout > 0)
            throw new PeftOnnxException($"{_config.SourcePath}: lora_dropout = {_config.LoraDropout.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not supported for training ADALORA adapters (expected 0.0)");
        using var scope = NewDisposeScope();
        var ae = A.mul(E);
        var branch = x.matmul(ae.t()).matmul(B.t());
        return layer.BaseForward(x).Plus(ScaleInPlace(branch)).MoveToOuterDisposeScope();
    }

    /// <summary>get_delta_weight: B @ (A * E) scaled, [out, in].</summary>
    public Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        return ScaleInPlace(B.matmul(A.mul(E))).MoveToOuterDisposeScope();
    }

    /// <summary>||P P^T - I||_F for lora_A and ||P^T P - I||_F for lora_B, in that order.</summary>
    public IEnumerable<Tensor> OrthogonalityNorms()
    {
        yield return Deviation(A.matmul(A.t()));
        yield return Deviation(B.t().matmul(B));
    }

    private static Tensor Deviation(Tensor covariance)
    {
        using var scope = NewDisposeScope();
        var identity = eye(covariance.shape[0], covariance.shape[1], covariance.dtype, covariance.device);
        return linalg.norm(covariance.sub(identity)).MoveToOuterDisposeScope();
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
