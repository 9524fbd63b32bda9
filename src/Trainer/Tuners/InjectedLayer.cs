using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>
/// PEFT's BaseTunerLayer for one wrapped linear module: forwards through the adapter until merged, then through
/// the (merged) base weights alone. Subclasses say how the adapter changes the output and the weights.
/// </summary>
public abstract class InjectedLayer(TargetMatch target) : ILinearAdapter, IDisposable
{
    public TargetMatch Target { get; } = target;
    public string Path => Target.Path;

    /// <summary>True while the adapter is folded into the base weight (and bias).</summary>
    public bool Merged { get; private set; }

    /// <summary>The layer's trainable tensors, in the order PEFT registers them.</summary>
    public abstract IReadOnlyList<AdapterParameter> Parameters { get; }

    public Tensor Forward(LinearLayer layer, Tensor x) => Merged ? layer.BaseForward(x) : AdaptedForward(layer, x);

    /// <summary>The module's output with the adapter applied on top of the unmerged base weights.</summary>
    protected abstract Tensor AdaptedForward(LinearLayer layer, Tensor x);

    /// <summary>Folds the adapter into the base weight in place (the store's tensors, so every reader sees it).</summary>
    public void Merge(LinearLayer layer)
    {
        if (Merged) return;
        using (no_grad()) MergeInto(layer);
        Merged = true;
    }

    public void Unmerge(LinearLayer layer)
    {
        if (!Merged) return;
        using (no_grad()) UnmergeFrom(layer);
        Merged = false;
    }

    /// <summary>Throws when the adapter cannot be folded into <paramref name="layer"/>; run for every layer before any merges.</summary>
    public virtual void CheckMergeable(LinearLayer layer) { }

    protected abstract void MergeInto(LinearLayer layer);
    protected abstract void UnmergeFrom(LinearLayer layer);

    public void Dispose()
    {
        foreach (var p in Parameters) p.Value.Dispose();
        GC.SuppressFinalize(this);
    }
}
