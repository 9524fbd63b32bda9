using Peft.Onnx.Core;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Training;

/// <summary>Hyper-parameters of torch.optim.SGD (its defaults: plain gradient descent).</summary>
public sealed record SgdOptions(double Lr, double Momentum = 0, double Dampening = 0, double WeightDecay = 0, bool Nesterov = false)
{
    public void Validate()
    {
        if (!(Momentum >= 0)) throw new PeftOnnxException($"sgd: momentum {Momentum} is invalid (expected >= 0)");
        if (!(WeightDecay >= 0)) throw new PeftOnnxException($"sgd: weight decay {WeightDecay} is invalid (expected >= 0)");
        if (Nesterov && (Momentum <= 0 || Dampening != 0)) throw new PeftOnnxException("sgd: nesterov momentum requires a momentum and zero dampening");
    }
}

/// <summary>
/// torch.optim.SGD: g += weight_decay * p; with momentum, buf = g on the first step, then
/// buf = momentum * buf + (1 - dampening) * g, and g = buf (or g + momentum * buf with nesterov); p -= lr * g.
/// </summary>
public sealed class Sgd : Optimizer
{
    private readonly Dictionary<string, Tensor> _momentum = new(StringComparer.Ordinal);

    public Sgd(IReadOnlyList<(string Name, Tensor Parameter)> parameters, SgdOptions options) : base(parameters, options.Lr)
    {
        options.Validate();
        Options = options;
    }

    public SgdOptions Options { get; }

    protected override void Update(string name, Tensor parameter, Tensor grad)
    {
        var d = grad;
        if (Options.WeightDecay != 0) d = d.Plus(parameter, alpha: Options.WeightDecay);
        if (Options.Momentum != 0)
        {
            if (!_momentum.TryGetValue(name, out var buf))
            {
                buf = d.detach().clone();
                buf.DetachFromDisposeScope();
                _momentum[name] = buf;
            }
            else buf.TimesInPlace(Options.Momentum).PlusInPlace(d, alpha: 1 - Options.Dampening);
            d = Options.Nesterov ? d.Plus(buf, alpha: Options.Momentum) : buf;
        }
        parameter.PlusInPlace(d, alpha: -Lr);
    }

    public override IReadOnlyDictionary<string, Tensor> StateDict() =>
        _momentum.ToDictionary(kv => kv.Key + ".momentum_buffer", kv => CopyOut(kv.Value));

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        foreach (var key in state.Keys)
        {
            const string suffix = ".momentum_buffer";
            if (!key.EndsWith(suffix, StringComparison.Ordinal)) throw new PeftOnnxException($"optimizer state: unexpected entry '{key}' for SGD");
            var name = key[..^suffix.Length];
            var loaded = LoadInto(state, key, ParameterNamed(name));
            if (_momentum.Remove(name, out var old)) old.Dispose();
            _momentum[name] = loaded;
        }
    }

    public override void Dispose()
    {
        foreach (var t in _momentum.Values) t.Dispose();
        _momentum.Clear();
        base.Dispose();
    }
}
