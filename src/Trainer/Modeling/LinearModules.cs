using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>
/// A linear module of the loaded model. The weight is held as [out, in] whatever the checkpoint layout
/// (GPT-2's Conv1D stores [in, out] and is transposed once at load; <see cref="LinearSpec.IsConv1D"/> remembers it).
/// </summary>
public sealed class LinearLayer(LinearSpec spec, ParameterStore store)
{
    public LinearSpec Spec { get; } = spec;
    public string Path => Spec.Path;
    public Tensor Weight => store[Spec.WeightName];
    public Tensor? Bias => Spec.HasBias ? store[Spec.BiasName] : null;

    public Tensor BaseForward(Tensor x) => nn.functional.linear(x, Weight, Bias);
}

/// <summary>
/// Replaces a linear module's forward, as a PEFT tuner layer wraps the base layer (LoRA adds B·A·x,
/// IA3 scales the input or output). The model's code calls modules by path and never knows which tuner is there.
/// </summary>
public interface ILinearAdapter
{
    Tensor Forward(LinearLayer layer, Tensor x);
}

/// <summary>The model's linear modules by path, and the adapters that wrap some of them.</summary>
public sealed class LinearModules
{
    private readonly Dictionary<string, LinearLayer> _layers;
    private readonly Dictionary<string, ILinearAdapter> _adapters = new(StringComparer.Ordinal);

    public LinearModules(IEnumerable<LinearSpec> specs, ParameterStore store)
    {
        _layers = specs.ToDictionary(s => s.Path, s => new LinearLayer(s, store), StringComparer.Ordinal);
    }

    public IReadOnlyDictionary<string, LinearLayer> Layers => _layers;
    public IReadOnlyDictionary<string, ILinearAdapter> Adapters => _adapters;

    public LinearLayer this[string path] => _layers.TryGetValue(path, out var l) ? l
        : throw new PeftOnnxException($"model has no linear module '{path}'");

    public void Wrap(string path, ILinearAdapter adapter)
    {
        _ = this[path];
        _adapters[path] = adapter;
    }

    public void Unwrap(string path) => _adapters.Remove(path);

    /// <summary>Runs the module at <paramref name="path"/> on x: through its adapter when one wraps it.</summary>
    public Tensor Forward(string path, Tensor x)
    {
        var layer = this[path];
        return _adapters.TryGetValue(path, out var adapter) ? adapter.Forward(layer, x) : layer.BaseForward(x);
    }
}
