using Peft.Onnx.Core;
using Peft.Onnx.Trainer.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Training;

/// <summary>Hyper-parameters of torch.optim.AdamW, with its defaults.</summary>
public sealed record AdamWOptions(double Lr = 1e-3, double Beta1 = 0.9, double Beta2 = 0.999, double Eps = 1e-8, double WeightDecay = 0.01)
{
    public void Validate()
    {
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new PeftOnnxException($"adamw: beta1 {Beta1} is invalid (expected 0 <= beta1 < 1)");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new PeftOnnxException($"adamw: beta2 {Beta2} is invalid (expected 0 <= beta2 < 1)");
        if (!(Eps >= 0)) throw new PeftOnnxException($"adamw: eps {Eps} is invalid (expected >= 0)");
        if (!(WeightDecay >= 0)) throw new PeftOnnxException($"adamw: weight decay {WeightDecay} is invalid (expected >= 0)");
    }
}

/// <summary>
/// torch.optim.AdamW (single-tensor path), per parameter with a gradient:
/// step += 1; p *= 1 - lr * weight_decay; m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g * g;
/// denom = sqrt(v) / sqrt(1 - beta2^step) + eps; p -= lr / (1 - beta1^step) * m / denom.
/// </summary>
public sealed class AdamW : Optimizer
{
    /// <summary>Per-parameter state, as torch's optimizer.state[p] = {step, exp_avg, exp_avg_sq}.</summary>
    public sealed class State(Tensor expAvg, Tensor expAvgSq) : IDisposable
    {
        public long Step { get; internal set; }
        public Tensor ExpAvg { get; internal set; } = expAvg;
        public Tensor ExpAvgSq { get; internal set; } = expAvgSq;

        public void Dispose()
        {
            ExpAvg.Dispose();
            ExpAvgSq.Dispose();
        }
    }

    private readonly Dictionary<string, State> _state = new(StringComparer.Ordinal);

    public AdamW(IReadOnlyList<(string Name, Tensor Parameter)> parameters, AdamWOptions options) : base(parameters, options.Lr)
    {
        options.Validate();
        Options = options;
    }

    public AdamWOptions Options { get; }

    /// <summary>State by parameter name (only parameters that have been stepped).</summary>
    public IReadOnlyDictionary<string, State> States => _state;

    protected override void Update(string name, Tensor parameter, Tensor grad)
    {
        if (!_state.TryGetValue(name, out var s))
            _state[name] = s = new State(NewState(parameter), NewState(parameter));
        s.Step++;
        var (beta1, beta2) = (Options.Beta1, Options.Beta2);

        parameter.TimesInPlace(1 - Lr * Options.WeightDecay);
        s.ExpAvg.TimesInPlace(beta1).PlusInPlace(grad, alpha: 1 - beta1);
        using (var weight = (1 - beta2).ToScalar()) s.ExpAvgSq.TimesInPlace(beta2).addcmul_(grad, grad, value: weight);

        double biasCorrection1 = 1 - Math.Pow(beta1, s.Step);
        double biasCorrection2 = 1 - Math.Pow(beta2, s.Step);
        double stepSize = Lr / biasCorrection1;
        var denom = s.ExpAvgSq.sqrt().Over(Math.Sqrt(biasCorrection2)).PlusInPlace(Options.Eps);
        using (var step = (-stepSize).ToScalar()) parameter.addcdiv_(s.ExpAvg, denom, value: step);
    }

    public override IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, s) in _state)
        {
            var step = tensor((float)s.Step);
            step.DetachFromDisposeScope();
            result[name + ".step"] = step;
            result[name + ".exp_avg"] = CopyOut(s.ExpAvg);
            result[name + ".exp_avg_sq"] = CopyOut(s.ExpAvgSq);
        }
        return result;
    }

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        var names = state.Keys.Select(k => k.EndsWith(".step", StringComparison.Ordinal) ? k[..^5]
            : k.EndsWith(".exp_avg_sq", StringComparison.Ordinal) ? k[..^11]
            : k.EndsWith(".exp_avg", StringComparison.Ordinal) ? k[..^8]
            : throw new PeftOnnxException($"optimizer state: unexpected entry '{k}' for AdamW")).Distinct().ToList();
        var loaded = new Dictionary<string, State>(StringComparer.Ordinal);
        try
        {
            foreach (var name in names)
            {
                var p = ParameterNamed(name);
                if (!state.TryGetValue(name + ".step", out var step)) throw new PeftOnnxException($"optimizer state: missing '{name}.step'");
                var s = new State(LoadInto(state, name + ".exp_avg", p), LoadInto(state, name + ".exp_avg_sq", p))
                {
                    Step = (long)Math.Round(step.to(float64).item<double>()),
                };
                loaded[name] = s;
            }
        }
        catch
        {
            foreach (var s in loaded.Values) s.Dispose();
            throw;
        }
        foreach (var s in _state.Values) s.Dispose();
        _state.Clear();
        foreach (var (name, s) in loaded) _state[name] = s;
    }

    public override void Dispose()
    {
        foreach (var s in _state.Values) s.Dispose();
        _state.Clear();
        base.Dispose();
    }
}
