namespace Peft.Onnx.Core.Architectures;

/// <summary>
/// One linear module (torch nn.Linear, or GPT-2's Conv1D whose weight is stored [in, out]) under its module
/// path, e.g. "transformer.h.0.self_attention.query_key_value". PEFT targets these by name.
/// </summary>
public sealed record LinearSpec(string Path, long InFeatures, long OutFeatures, bool HasBias, bool IsConv1D = false)
{
    public string WeightName => Path + ".weight";
    public string BiasName => Path + ".bias";
}
