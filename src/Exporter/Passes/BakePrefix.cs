using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Graphs;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// Prefix tuning compiled to constants. PEFT 0.7.1's get_prompt views prompt_embeddings [nv, num_layers * 2 * token_dim]
/// as [nv, num_layers * 2, heads, head_dim] and permutes it to num_layers * 2 tensors [heads, nv, head_dim]; the
/// graph attends to them as a past of nv tokens that is always there (<see cref="AttentionPrefix"/>).
/// <list type="bullet">
/// <item>decoder-only (num_transformer_submodules 1): as the family's <see cref="PrefixLayout"/> says: layer i gets
/// tensors 2i (key) and 2i + 1 (value), or the regrouped layout of <see cref="KeysFirstRegrouped"/>;</item>
/// <item>encoder-decoder (num_transformer_submodules 2): the list is concatenated with itself and split into groups
/// of 4 (self key, self value, cross key, cross value), one group per decoder layer, so decoder layer j gets tensors
/// (4j + m) mod (2 * num_layers). The encoder gets none. transformers 4.33 uses the cross pair only when the encoder
/// sequence is exactly nv long (else it projects the encoder output as usual).</item>
/// </list>
/// heads x head_dim comes from the tensor's width per layer and must be the model's key/value heads x head_dim
/// (under grouped-query attention newer PEFT sizes the prefix with num_key_value_heads; 0.7.1 cannot run otherwise).
/// </summary>
public static class BakePrefix
{
    /// <summary>The constant prefix of a decoder-only model.</summary>
    public static AttentionPrefix ForDecoder(PromptAdapter adapter, ModelConfig model)
    {
        if (!adapter.IsPrefix) throw new ArgumentException("not a prefix-tuning adapter");
        return Of(PrefixTuningLayout.ForDecoder(adapter.Embeddings, adapter.Rows, adapter.Columns, adapter.NumVirtualTokens, model, adapter.Config.SourcePath));
    }

    /// <summary><see cref="PrefixTuningLayout.KeysFirstRegrouped"/> as an attention prefix.</summary>
    public static AttentionPrefix KeysFirstRegrouped(float[][] tensors, int nv, int heads, int headDim) =>
        Of(PrefixTuningLayout.KeysFirstRegrouped(tensors, nv, heads, headDim));

    private static AttentionPrefix Of(PrefixKeyValues p) => new(p.Length, p.Heads, p.HeadDim, p.Keys, p.Values);

    /// <summary>The decoder prefix of an encoder-decoder model (self-attention, plus the cross part with 2 submodules).</summary>
    public static AttentionPrefix ForSeq2Seq(PromptAdapter adapter, ModelConfig model)
    {
        var d = model.Dimensions;
        var tensors = Split(adapter, d.NumKeyValueHeads, d.HeadDim);
        int submodules = adapter.Config.NumTransformerSubmodules ?? 2;
        if (submodules is not (1 or 2))
            throw new PeftOnnxException($"{adapter.Config.SourcePath}: num_transformer_submodules = {submodules}, expected 1 or 2");
        int group = 2 * submodules;
        int available = tensors.Length * submodules / group;   // the (possibly doubled) list split into groups
        int layers = d.NumDecoderLayers;
        if (layers > available)
            throw new PeftOnnxException($"{adapter.Config.SourcePath}: prefix for {available} decoder layers (num_layers {tensors.Length / 2}), but the model has {layers}");
        float[] At(int j, int m) => tensors[(group * j + m) % tensors.Length];
        var prefix = new AttentionPrefix(adapter.NumVirtualTokens, d.NumKeyValueHeads, d.HeadDim,
            Enumerable.Range(0, layers).Select(j => At(j, 0)).ToArray(),
            Enumerable.Range(0, layers).Select(j => At(j, 1)).ToArray());
        if (submodules == 1) return prefix;
        return new AttentionPrefix(prefix.Length, prefix.Heads, prefix.HeadDim, prefix.Keys, prefix.Values)
        {
            CrossKeys = Enumerable.Range(0, layers).Select(j => At(j, 2)).ToArray(),
            CrossValues = Enumerable.Range(0, layers).Select(j => At(j, 3)).ToArray(),
        };
    }

    /// <summary>prompt_embeddings [nv, n * heads * head_dim] -> n tensors [heads, nv, head_dim] (<see cref="PrefixTuningLayout.Split"/>).</summary>
    public static float[][] Split(PromptAdapter adapter, int heads, int headDim)
    {
        if (!adapter.IsPrefix) throw new ArgumentException("not a prefix-tuning adapter");
        return PrefixTuningLayout.Split(adapter.Embeddings, adapter.Rows, adapter.Columns, heads, headDim, adapter.Config.SourcePath);
    }
}
