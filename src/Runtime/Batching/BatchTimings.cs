using System.Diagnostics;

namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// Seconds a continuous batch's thread spent per <see cref="BatchPhase"/>: written by that thread, read by any (a
/// server's /metrics), so a profile of the batch needs no tracer.
/// </summary>
public sealed class BatchTimings
{
    private readonly long[] _ticks = new long[Enum.GetValues<BatchPhase>().Length];

    /// <summary>Adds the time since <paramref name="startedAt"/> (a <see cref="Stopwatch.GetTimestamp"/>) to <paramref name="phase"/>.</summary>
    public void Add(BatchPhase phase, long startedAt) => Interlocked.Add(ref _ticks[(int)phase], Stopwatch.GetTimestamp() - startedAt);

    public double Seconds(BatchPhase phase) => Interlocked.Read(ref _ticks[(int)phase]) / (double)Stopwatch.Frequency;
}
