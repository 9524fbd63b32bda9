using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// How PEFT 0.7.1's get_prompt turns a prefix-tuning adapter's prompt_embeddings into the keys and values every layer
/// attends to: it views [nv, num_layers * 2 * token_dim] as [nv, num_layers * 2, heads, head_dim] and permutes it to
/// num_layers * 2 tensors [heads, nv, head_dim], which the family's <see cref="PrefixLayout"/> hands to the layers.
/// prompt_embeddings is what save_pretrained writes with or without prefix_projection (the projection MLP's output),
/// so both read the same way. Plain float arithmetic, shared by the exporter and the Runtime.
/// </summary>
public static class PrefixTuningLayout
{
    /// <summary>
    /// The prefix of <paramref name="nv"/> virtual tokens of a decoder-only model from prompt_embeddings (row-major
    /// [<paramref name="rows"/>, <paramref name="columns"/>]); <paramref name="source"/> names the adapter in errors.
    /// </summary>
    public static PrefixKeyValues ForDecoder(float[] embeddings, int rows, int columns, int nv, ModelConfig model, string source)
    {
        var d = model.Dimensions;
        var tensors = Split(embeddings, rows, columns, d.NumKeyValueHeads, d.HeadDim, source);
        if (tensors.Length != 2 * d.NumLayers)
            throw new PeftOnnxException($"{source}: prefix for num_layers {tensors.Length / 2}, but the model has {d.NumLayers} layers");
        if (model.Family.PrefixLayout == PrefixLayout.KeysFirstRegrouped) return KeysFirstRegrouped(tensors, nv, d.NumKeyValueHeads, d.HeadDim);
        var keys = Enumerable.Range(0, d.NumLayers).Select(i => tensors[2 * i]).ToArray();
        var values = Enumerable.Range(0, d.NumLayers).Select(i => tensors[2 * i + 1]).ToArray();
        return new PrefixKeyValues(nv, d.NumKeyValueHeads, d.HeadDim, keys, values);
    }

    /// <summary>
    /// <see cref="PrefixLayout.KeysFirstRegrouped"/> (PEFT 0.7.1's bloom_model_postprocess_past_key_value), reproduced
    /// as the model then attends with it: the 2L tensors [heads, nv, head_dim] (order: layer 0 key, layer 0 value,
    /// layer 1 key, ...) are concatenated; the first L become the keys and the last L the values, so layer l gets
    /// tensor l as key and tensor L + l as value. The keys are then transpose(nv, heads) and reshaped (not transposed)
    /// to the key cache's [heads, head_dim, nv]: key element (h, d, t) is flat element h * head_dim * nv + d * nv + t of
    /// tensor l read in [nv, heads, head_dim] order. Returned in the [heads, nv, head_dim] layout.
    /// </summary>
    public static PrefixKeyValues KeysFirstRegrouped(float[][] tensors, int nv, int heads, int headDim)
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
        return new PrefixKeyValues(nv, heads, headDim, keys, values);
    }

    /// <summary>prompt_embeddings [rows, n * heads * head_dim] -> n tensors [heads, rows, head_dim] (view + permute of get_prompt).</summary>
    public static float[][] Split(float[] embeddings, int rows, int columns, int heads, int headDim, string source)
    {
        int width = heads * headDim;
        if (columns % (2 * width) != 0)
            throw new PeftOnnxException($"{source}: prompt_embeddings rows of {columns} values are not layers x 2 x {heads} key/value heads x head_dim {headDim} (check token_dim / num_attention_heads in adapter_config.json)");
        int count = columns / width;
        var result = new float[count][];
        for (int e = 0; e < count; e++)
        {
            var t = new float[heads * rows * headDim];
            for (int h = 0; h < heads; h++)
                for (int v = 0; v < rows; v++)
                    Array.Copy(embeddings, (long)v * columns + (long)e * width + h * headDim, t, ((long)h * rows + v) * headDim, headDim);
            result[e] = t;
        }
        return result;
    }
}
