namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// One unmerged LoRA module: A [rank, in] and B [out, rank] in PEFT's nn.Linear layouts, and the scaling its output
/// is multiplied by.
/// </summary>
public sealed record LoraBranch(string Path, int Rank, float[] A, float[] B, double Scaling)
{
    /// <summary>lora_B's bias [out] (lora_bias = true): added to B's output, so scaled with the branch.</summary>
    public float[]? Bias { get; init; }

    /// <summary>
    /// DoRA's constant per-output factor m / ||W + s B A|| [out] (use_dora = true): the branch is then
    /// (f - 1) * x W^T + f * s * x A^T B^T, so that base plus branch is f * (x W^T + s x A^T B^T) + bias.
    /// </summary>
    public float[]? MagnitudeScale { get; init; }

    /// <summary>
    /// True when A and B are merged into the weight and only the scaled bias of lora_B is left to add: the base
    /// module has no bias to merge it into (PEFT refuses that merge; the export adds the bias instead).
    /// </summary>
    public bool BiasOnly { get; init; }

    /// <summary>The term a merged lora_bias adapter adds to a module without a bias: scaling * lora_B.bias.</summary>
    public static LoraBranch AddedBias(string path, float[] bias, double scaling) => new(path, 0, [], [], scaling) { Bias = bias, BiasOnly = true };
}
