using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>
/// PEFT's ModulesToSaveWrapper: a trainable deep copy of one module's tensors replaces them in the store (so the
/// model's forward uses the copy), while the frozen originals are kept to restore. A tied tensor gets its own copy,
/// as deepcopy of the module gives it.
/// </summary>
public sealed class ModuleCopy : IDisposable
{
    private readonly ParameterStore _store;
    private readonly List<(string Name, Tensor Original, Tensor Copy)> _tensors = [];

    public ModuleCopy(ParameterStore store, string module)
    {
        _store = store;
        Module = module;
        var copies = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var name in store.Names.Where(n => n.StartsWith(module + ".", StringComparison.Ordinal)).ToList())
        {
            var current = store[name];
            if (!copies.TryGetValue(current, out var copy))
            {
                using (no_grad()) copy = current.detach().clone();
                copy.DetachFromDisposeScope().requires_grad_(true);
                copies[current] = copy;
            }
            // detach() is a second handle on the same storage, so replacing the store's handle cannot free the original.
            _tensors.Add((name, current.detach().DetachFromDisposeScope(), copy));
            store.Set(name, copy);
        }
    }

    /// <summary>The module path as found in the model (a name that ends with a modules_to_save entry).</summary>
    public string Module { get; }

    /// <summary>Store names and the trainable copies now under them.</summary>
    public IEnumerable<(string Name, Tensor Copy)> Copies => _tensors.Select(t => (t.Name, t.Copy));

    /// <summary>Store names and the frozen originals (PEFT's original_module).</summary>
    public IEnumerable<(string Name, Tensor Original)> Originals => _tensors.Select(t => (t.Name, t.Original));

    /// <summary>Remainder of a store name below the module ("weight" for "lm_head.weight").</summary>
    public string Leaf(string name) => name[(Module.Length + 1)..];

    /// <summary>Puts the originals back and frees the copies.</summary>
    public void Restore()
    {
        foreach (var (name, original, _) in _tensors) _store.Set(name, original);
        _tensors.Clear();
    }

    /// <summary>Keeps the copies as the module's tensors for good (frozen) and frees the originals' extra handles.</summary>
    public void KeepCopies()
    {
        foreach (var (_, original, copy) in _tensors)
        {
            copy.requires_grad_(false);
            original.Dispose();
        }
        _tensors.Clear();
    }

    public void Dispose() => Restore();
}
