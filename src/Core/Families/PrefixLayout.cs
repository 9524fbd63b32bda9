namespace Peft.Onnx.Core.Families;

/// <summary>
/// How PEFT 0.7.1 hands the 2 * num_layers prefix tensors [batch, heads, nv, head_dim] (layer 0 key, layer 0 value,
/// layer 1 key, ...) to the model's attention.
/// </summary>
public enum PrefixLayout
{
    /// <summary>Layer i reads tensor 2i as its keys and 2i + 1 as its values.</summary>
    PairPerLayer,

    /// <summary>
    /// A model-specific postprocess: the first num_layers tensors become the keys and the rest the values, and each
    /// key is transposed (tokens with heads) then reshaped, not transposed, to [heads, head_dim, nv], which regroups
    /// its values; the attention reads that as its key cache.
    /// </summary>
    KeysFirstRegrouped,
}
