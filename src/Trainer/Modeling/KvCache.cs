using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>
/// Past keys and values per layer, each [batch, kv_heads, seq, head_dim] (one layout for every family;
/// BLOOM's fused layout is a transformers detail we do not copy). Encoder-decoders also carry the
/// cross-attention keys/values per decoder layer. Owns its tensors.
/// </summary>
public sealed class KvCache : IDisposable
{
    public List<(Tensor Key, Tensor Value)> Self { get; } = new();

    /// <summary>Cross-attention keys/values per decoder layer (encoder-decoder only), or empty.</summary>
    public List<(Tensor Key, Tensor Value)> Cross { get; } = new();

    /// <summary>Number of cached positions (the past length).</summary>
    public long Length => Self.Count == 0 ? 0 : Self[0].Key.shape[2];

    /// <summary>Detaches the tensors from any dispose scope so the cache can outlive the step that made it.</summary>
    public KvCache MoveToOuterScope()
    {
        foreach (var (k, v) in Self.Concat(Cross)) { k.MoveToOuterDisposeScope(); v.MoveToOuterDisposeScope(); }
        return this;
    }

    public void Dispose()
    {
        foreach (var (k, v) in Self.Concat(Cross)) { k.Dispose(); v.Dispose(); }
        Self.Clear();
        Cross.Clear();
    }
}
