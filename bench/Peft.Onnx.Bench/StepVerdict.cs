namespace Peft.Onnx.Bench;

/// <summary>
/// Whether MatMulNBits kernels at a measured rate let a quantized model reach its decode goal: a step needs at least
/// <paramref name="FloorMicroseconds"/> in MatMulNBits (every node's weights at the rate) plus the
/// <paramref name="RestMicroseconds"/> a step spends elsewhere (other kernels, the run's and the Runtime's own overhead), and the
/// goal allows <paramref name="NeededMicroseconds"/> (float32's step over the goal's ratio).
/// </summary>
public sealed record StepVerdict(double FloorMicroseconds, double RestMicroseconds, double NeededMicroseconds)
{
    public double StepMicroseconds => FloorMicroseconds + RestMicroseconds;

    public bool Reachable => StepMicroseconds <= NeededMicroseconds;

    /// <summary>The ratio over float32 such a step would give (float32's step over it).</summary>
    public double BestRatio(double fp32StepMicroseconds) => StepMicroseconds > 0 ? fp32StepMicroseconds / StepMicroseconds : 0;

    /// <summary>Microseconds the nodes of <paramref name="shapes"/> take at <paramref name="weightsPerSecond"/> of their setting (one step reads each weight once).</summary>
    public static double Floor(IEnumerable<MatMulNBitsShape> shapes, Func<MatMulNBitsShape, double> weightsPerSecond) =>
        shapes.Sum(s => weightsPerSecond(s) is var rate and > 0 ? s.Weights / rate * 1e6 : double.PositiveInfinity);

    /// <summary>
    /// A measured step's time outside MatMulNBits: the step times the share of its profiled run spent outside MatMulNBits
    /// kernels. The share, not the profile's microseconds: on a shared machine the profiled steps and the timed rounds
    /// see different loads, so only fractions of one run carry over to the other.
    /// </summary>
    public static double Rest(double stepMicroseconds, double profileRunMicroseconds, double profileMatMulNBitsMicroseconds) =>
        profileRunMicroseconds > 0 ? stepMicroseconds * Math.Max(0, profileRunMicroseconds - profileMatMulNBitsMicroseconds) / profileRunMicroseconds : 0;

    /// <summary>The step a goal of <paramref name="goalRatio"/> times float32's decode speed allows.</summary>
    public static double Needed(double fp32StepMicroseconds, double goalRatio) => fp32StepMicroseconds / goalRatio;
}
