using Peft.Onnx.Core;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Training;

/// <summary>
/// A torch.optim optimizer over named parameters: <see cref="Step"/> updates every parameter that has a
/// gradient, in place and without recording autograd history; <see cref="ZeroGrad"/> clears the gradients.
/// Per-parameter state (exp_avg, momentum buffers, step counts) is exposed by name through
/// <see cref="StateDict"/> / <see cref="LoadStateDict"/> so a checkpoint can carry it.
/// </summary>
public abstract class Optimizer : IDisposable
{
    protected Optimizer(IReadOnlyList<(string Name, Tensor Parameter)> parameters, double lr)
    {
        if (parameters.Count == 0) throw new PeftOnnxException("optimizer: no trainable parameters");
        if (!(lr >= 0) || !double.IsFinite(lr)) throw new PeftOnnxException($"optimizer: learning rate {lr} is invalid (expected a finite number >= 0)");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, p) in parameters)
        {
            if (!names.Add(name)) throw new PeftOnnxException($"optimizer: parameter '{name}' given twice");
            if (!p.requires_grad) throw new PeftOnnxException($"optimizer: parameter '{name}' does not require grad");
        }
        Parameters = parameters;
        Lr = lr;
    }

    /// <summary>The parameters under their PEFT names, in the order given.</summary>
    public IReadOnlyList<(string Name, Tensor Parameter)> Parameters { get; }

    /// <summary>The learning rate of the next step (a scheduler may change it between steps).</summary>
    public double Lr { get; set; }

    /// <summary>Optimizer steps taken so far.</summary>
    public long Steps { get; protected set; }

    /// <summary>Applies one update to every parameter that has a gradient (torch's optimizer.step()).</summary>
    public void Step()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Steps++;
        foreach (var (name, p) in Parameters)
        {
            var grad = p.grad;
            if (grad is null) continue;
            Update(name, p, grad);
        }
    }

    /// <summary>Updates one parameter in place; runs under no_grad inside a dispose scope.</summary>
    protected abstract void Update(string name, Tensor parameter, Tensor grad);

    /// <summary>Zeroes every gradient (optimizer.zero_grad(set_to_none=False)).</summary>
    public void ZeroGrad()
    {
        using var scope = NewDisposeScope();
        foreach (var (_, p) in Parameters)
        {
            var grad = p.grad;
            if (grad is null) continue;
            grad.detach_();
            grad.zero_();
        }
    }

    /// <summary>
    /// The optimizer state as named tensors ("&lt;param&gt;.exp_avg", "&lt;param&gt;.step", ...), fresh CPU copies
    /// owned by the caller. Parameters that never received a gradient have no entries, as in torch.
    /// </summary>
    public abstract IReadOnlyDictionary<string, Tensor> StateDict();

    /// <summary>Restores <see cref="StateDict"/> output (names and shapes checked).</summary>
    public abstract void LoadStateDict(IReadOnlyDictionary<string, Tensor> state);

    /// <summary>A buffer like <paramref name="like"/> that lives outside any dispose scope (optimizer state).</summary>
    protected static Tensor NewState(Tensor like)
    {
        var t = zeros_like(like);
        t.DetachFromDisposeScope();
        return t;
    }

    protected static Tensor CopyOut(Tensor t)
    {
        var c = t.detach().cpu().clone();
        c.DetachFromDisposeScope();
        return c;
    }

    protected Tensor ParameterNamed(string name) =>
        Parameters.FirstOrDefault(p => p.Name == name).Parameter
        ?? throw new PeftOnnxException($"optimizer state: no parameter named '{name}'");

    protected static Tensor LoadInto(IReadOnlyDictionary<string, Tensor> state, string key, Tensor like)
    {
        if (!state.TryGetValue(key, out var t)) throw new PeftOnnxException($"optimizer state: missing '{key}'");
        if (!t.shape.SequenceEqual(like.shape))
            throw new PeftOnnxException($"optimizer state: '{key}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", like.shape)}]");
        var copy = t.detach().to(like.dtype).to(like.device).clone();
        copy.DetachFromDisposeScope();
        return copy;
    }

    public virtual void Dispose() => GC.SuppressFinalize(this);
}
