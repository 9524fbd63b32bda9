namespace Peft.Onnx.Bench;

/// <summary>
/// A quantized export the kernel ceiling judges: its MatMulNBits settings (<paramref name="Shapes"/>), the decode
/// goal's ratio over float32 it is held to, its measured batch-1 decode step (unprofiled, from the timed rounds) and from
/// its batch-1 decode-step profile the run's time and its MatMulNBits kernels' time. Where a model has no profile of its
/// own, step and profile are <paramref name="RestFrom"/>'s (the graphs differ only in their MatMulNBits nodes).
/// </summary>
public sealed record CeilingModel(string Variant, IReadOnlyList<MatMulNBitsShape> Shapes, double GoalRatio, double StepMicroseconds,
    double ProfileRunMicroseconds, double ProfileMatMulNBitsMicroseconds, string RestFrom)
{
    /// <summary>The profile's run and MatMulNBits kernel microseconds per step (zero where it ran none).</summary>
    public static (double Run, double MatMulNBits) FromProfile(Dictionary<string, object?> profile) =>
        (Convert.ToDouble(profile["run_microseconds_per_step"]),
         ((List<Dictionary<string, object?>>)profile["operators"]!).Where(o => (string?)o["op"] == "MatMulNBits").Sum(o => Convert.ToDouble(o["microseconds_per_step"])));
}
