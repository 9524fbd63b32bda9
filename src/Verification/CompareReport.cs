namespace Peft.Onnx.Verification;

/// <summary>What `compare` found; <see cref="Passed"/> is max diff &lt;= tolerance.</summary>
public sealed record CompareReport(
    string PeftType, string Source, int Rows, long Positions, double MaxAbsDiff, double MeanAbsDiff, double AdaptedLogitStd,
    double Tolerance, double Top1Agreement, int Generations, int GenerationsEqual, int MaxNewTokens,
    double? TorchAccuracy, double? OnnxAccuracy, IReadOnlyList<int[]> TorchSamples, IReadOnlyList<int[]> OnnxSamples,
    double TorchSeconds, double OnnxSeconds, float[] Differences)
{
    public bool Passed => MaxAbsDiff <= Tolerance;
    public double GenerationAgreement => Generations == 0 ? 1 : (double)GenerationsEqual / Generations;
}
