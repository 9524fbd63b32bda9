using Peft.Onnx.Core;
using Peft.Onnx.Core.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>
/// A model's tensors under their Hugging Face names ("transformer.h.0.self_attention.query_key_value.weight").
/// Owns the tensors: disposing the store frees their native memory.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    public IEnumerable<string> Names => _tensors.Keys;
    public int Count => _tensors.Count;
    public bool Contains(string name) => _tensors.ContainsKey(name);

    public Tensor this[string name] => _tensors.TryGetValue(name, out var t) ? t
        : throw new PeftOnnxException($"model has no parameter named '{name}'");

    public Tensor? TryGet(string name) => _tensors.GetValueOrDefault(name);

    /// <summary>Stores a tensor, replacing (and freeing) any previous one under that name unless it is the same object.</summary>
    public void Set(string name, Tensor tensor)
    {
        if (_tensors.TryGetValue(name, out var old) && !ReferenceEquals(old, tensor))
        {
            _tensors[name] = tensor;
            if (!_tensors.Values.Any(v => ReferenceEquals(v, old))) old.Dispose();
            return;
        }
        _tensors[name] = tensor;
    }

    /// <summary>Makes two names share one tensor (tied embeddings), as transformers' tie_weights does.</summary>
    public void Tie(string alias, string target) => _tensors[alias] = this[target];

    /// <summary>Distinct tensors (a tied tensor counts once), in insertion order.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> Distinct()
    {
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (name, t) in _tensors)
            if (seen.Add(t)) yield return (name, t);
    }

    public long CountElements() => Distinct().Sum(p => p.Tensor.numel());

    /// <summary>Reads one stored tensor as float32 (F16/BF16/F64 widened) or int64 (integer types).</summary>
    public static Tensor ReadTensor(ITensorSource source, string name)
    {
        var entry = source[name];
        return entry.DType switch
        {
            DType.I64 or DType.I32 or DType.I16 or DType.I8 or DType.U8 or DType.BOOL => tensor(source.ReadInt64(name), entry.Shape),
            _ => tensor(source.ReadFloat32(name), entry.Shape),
        };
    }

    public void Dispose()
    {
        foreach (var (_, t) in Distinct()) t.Dispose();
        _tensors.Clear();
    }
}
