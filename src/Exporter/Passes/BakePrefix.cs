using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
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
        var d = model.Dimensions;
        var tensors = Split(adapter, d.NumKeyValueHeads, d.HeadDim);
        if (tensors.Length != 2 * d.NumLayers)
            throw new PeftOnnxException($"{adapter.Config.SourcePath}: prefix for num_layers {tensors.Length / 2}, but the model has {d.NumLayers} layers");
        if (model.Family.PrefixLayout == PrefixLayout.KeysFirstRegrouped) return KeysFirstRegrouped(tensors, adapter.NumVirtualTokens, d.NumKeyValueHeads, d.HeadDim);
        var keys = Enumerable.Range(0, d.NumLayers).Select(i => tensors[2 * i]).ToArray();
        var values = Enumerable.Range(0, d.NumLayers).Select(i => tensors[2 * i + 1]).ToArray();
        return new AttentionPrefix(adapter.NumVirtualTokens, d.NumKeyValueHeads, d.HeadDim, keys, values);
    }

    /// <summary>
    /// <see cref="PrefixLayout.KeysFirstRegrouped"/> (PEFT 0.7.1's bloom_model_postprocess_past_key_value), reproduced
    /// as the model then attends with it: the 2L tensors [heads, nv, head_dim] (order: layer 0 key, layer 0 value,
    /// layer 1 key, ...) are concatenated; the first L become
    /// the keys and the last L the values, so layer l gets tensor l as key and tensor L + l as value. The keys are
    /// then transpose(nv, heads) and reshaped (not transposed) to the key cache's [heads, head_dim, nv]: key element
    /// (h, d, t) is flat element h * head_dim * nv + d * nv + t of tensor l read in [nv, heads, head_dim] order.
    /// Returned in the graph's [heads, nv, head_dim] layout.
    /// </summary>
    public static AttentionPrefix KeysFirstRegrouped(float[][] tensors, int nv, int heads, int headDim)
    {
        int layers = tensors.Length / 2;
        var keys = new float[layers][];
        var values = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            var source = tensors[l];                                  // [heads, nv, head_dim]
            var key = new float[source.Length];
            for (int h = 0; h < heads; h++)
                for (int d = 0; d < headDim; d++)
                    for (int t = 0; t < nv; t++)
                    {
                        int f = (h * headDim + d) * nv + t;           // flat index in the key cache's [heads, head_dim, nv]
                        int t0 = f / (heads * headDim), h0 = f / headDim % heads, d0 = f % headDim;   // read as [nv, heads, head_dim]
                        key[(h * nv + t) * headDim + d] = source[(h0 * nv + t0) * headDim + d0];
                    }
            keys[l] = key;
            values[l] = tensors[layers + l];
        }
        return new AttentionPrefix(nv, heads, headDim, keys, values);
    }

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

    /// <summary>
    /// prompt_embeddings [nv, n * heads * head_dim] -> n tensors [heads, nv, head_dim] (view + permute of get_prompt).
    /// </summary>
    public static float[][] Split(PromptAdapter adapter, int heads, int headDim)
    {
        if (!adapter.IsPrefix) throw new ArgumentException("not a prefix-tuning adapter");
        int nv = adapter.Rows, width = heads * headDim;
        if (adapter.Columns % (2 * width) != 0)
            throw new PeftOnnxException($"{adapter.Config.SourcePath}: prompt_embeddings rows of {adapter.Columns} values are not layers x 2 x {heads} key/value heads x head_dim {headDim} (check token_dim / num_attention_heads in adapter_config.json)");
        int count = adapter.Columns / width;
        var result = new float[count][];
        for (int e = 0; e < count; e++)
        {
            var t = new float[heads * nv * headDim];
            for (int h = 0; h < heads; h++)
                for (int v = 0; v < nv; v++)
                    Array.Copy(adapter.Embeddings, (long)v * adapter.Columns + (long)e * width + h * headDim, t, ((long)h * nv + v) * headDim, headDim);
            result[e] = t;
        }
        return result;
    }
}
