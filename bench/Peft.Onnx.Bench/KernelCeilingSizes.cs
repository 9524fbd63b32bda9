namespace Peft.Onnx.Bench;

/// <summary>Sizes of the kernel ceiling's two regimes (<see cref="KernelCeilingProbe"/>) and the timed runs of each.</summary>
public sealed record KernelCeilingSizes(long ResidentCodeBytes, long StreamedBytes, int ResidentRuns, int StreamedRuns)
{
    /// <summary>
    /// The full-size regimes: about 1 MB of codes resident (each of two cores' halves, scales included, fits a 1 MB L2;
    /// a kernel run then takes tens of microseconds, well above the profiler's 1 us resolution); four times the
    /// last-level cache streamed.
    /// </summary>
    public static KernelCeilingSizes Full() => new(1024 * 1024, 4 * KernelCeilingBench.LastLevelCacheBytes(), 200, 10);

    /// <summary>--quick: small enough for a test (on tiny shapes the two regimes are not apart).</summary>
    public static KernelCeilingSizes Quick() => new(16 * 1024, 1024 * 1024, 10, 3);
}
