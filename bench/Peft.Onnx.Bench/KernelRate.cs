namespace Peft.Onnx.Bench;

/// <summary>
/// One timed MatMulNBits model (<see cref="KernelCeilingProbe"/>): <paramref name="Nodes"/> nodes of [K inputs,
/// <paramref name="N"/> outputs] at M = 1, <paramref name="Bytes"/> of weights per run, and the kernels' time per run
/// from ONNX Runtime's profiler: the mean over the timed runs and the sum of each node's least (a run no other process
/// preempted), and the profiled runs' own mean time (kernels plus what the run spends between them).
/// </summary>
public sealed record KernelRate(int Nodes, long K, long N, long Bytes, double MeanMicroseconds, double LeastMicroseconds, double RunMicroseconds)
{
    public long Weights => Nodes * K * N;

    public double WeightsPerSecond => MeanMicroseconds > 0 ? Weights / (MeanMicroseconds * 1e-6) : 0;

    public double BestWeightsPerSecond => LeastMicroseconds > 0 ? Weights / (LeastMicroseconds * 1e-6) : 0;

    public double BytesPerSecond => MeanMicroseconds > 0 ? Bytes / (MeanMicroseconds * 1e-6) : 0;

    public Dictionary<string, object?> ToJson() => new()
    {
        ["nodes"] = Nodes, ["n_measured"] = N, ["bytes_per_run"] = Bytes,
        ["kernel_microseconds_per_run"] = Math.Round(MeanMicroseconds, 1), ["least_kernel_microseconds_per_run"] = Math.Round(LeastMicroseconds, 1),
        ["run_microseconds"] = Math.Round(RunMicroseconds, 1),
        ["weights_per_second"] = Math.Round(WeightsPerSecond), ["best_weights_per_second"] = Math.Round(BestWeightsPerSecond),
        ["gb_per_second"] = Math.Round(BytesPerSecond / 1e9, 3),
    };
}
