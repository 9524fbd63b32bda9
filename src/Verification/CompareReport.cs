namespace Peft.Onnx.Verification;

/// <summary>What `compare` found; <see cref="Passed"/> is max diff &lt;= tolerance.</summary>
public sealed record CompareReport(
    string PeftType, string Source, int Rows, long Positions, double MaxAbsDiff, double MeanAbsDiff, double AdaptedLogitStd,
    double Tolerance, double Top1Agreement, int Generations, int GenerationsEqual, int MaxNewTokens,
    double? TorchAccuracy, double? OnnxAccuracy, IReadOnlyList<int[]> TorchSamples, IReadOnlyList<int[]> OnnxSamples,
    double TorchSeconds, double OnnxSeconds, float[] Differences)
{
    /// <summary>
    /// Whether <see cref="Tolerance"/> decides <see cref="Passed"/>: always for a float export; for a quantized one only
    /// when the caller gave a tolerance (its logits differ by design, so the default float tolerance means nothing).
    /// </summary>
    public bool ToleranceApplies { get; init; } = true;

    /// <summary>The export multiplies by quantized weights (MatMulNBits).</summary>
    public bool Quantized { get; init; }

    /// <summary>KL divergence and each side's perplexity on the batch's labels.</summary>
    public DistributionStats? Distribution { get; init; }

    public bool Passed => !ToleranceApplies || MaxAbsDiff <= Tolerance;
    public double GenerationAgreement => Generations == 0 ? 1 : (double)GenerationsEqual / Generations;
}
