namespace Peft.Onnx.Core.SafeTensors;

/// <summary>
/// Where a tensor a model expects sits in a checkpoint: under its own name ("transformer.h.0.ln_1.weight"), or
/// without the base-model prefix ("h.0.ln_1.weight") when the file was saved from the family's bare base model
/// (transformers' *Model class rather than *ForCausalLM), as from_pretrained accepts. Every reader of base weights asks
/// here, so a checkpoint loads for training exactly when it loads for export.
/// </summary>
public static class CheckpointNames
{
    /// <summary>The state-dict name in <paramref name="source"/> of the tensor the model calls <paramref name="expected"/>; null when absent.</summary>
    public static string? Find(string expected, ITensorSource source)
    {
        if (source.Contains(expected)) return expected;
        var bare = WithoutBaseModelPrefix(expected);
        return bare is not null && source.Contains(bare) ? bare : null;
    }

    /// <summary>The name a bare base model's checkpoint gives the tensor: "transformer." / "model." dropped; null when it has no such prefix.</summary>
    public static string? WithoutBaseModelPrefix(string name)
    {
        var dot = name.IndexOf('.');
        return dot > 0 && name[..dot] is "transformer" or "model" ? name[(dot + 1)..] : null;
    }
}
