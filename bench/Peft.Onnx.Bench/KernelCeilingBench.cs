using System.Globalization;

namespace Peft.Onnx.Bench;

/// <summary>
/// What ONNX Runtime's MatMulNBits kernels allow a quantized decode step on this processor: every distinct setting of
/// the quantized exports timed alone (<see cref="KernelCeilingProbe"/>: resident in cache = the kernel's arithmetic
/// ceiling, streamed = what a decode step sees) beside the memory read bandwidth, then per model the step those rates
/// give (every node's weights at its setting's rate, plus the step's measured time outside MatMulNBits) against the
/// step its goal needs (float32's measured step over the goal's ratio).
/// </summary>
public static class KernelCeilingBench
{
    public static Dictionary<string, object?> Run(IReadOnlyList<CeilingModel> models, double fp32StepMicroseconds, double readBytesPerSecond,
        KernelCeilingSizes sizes, string work, TextWriter log)
    {
        var settings = models.SelectMany(m => m.Shapes).GroupBy(s => s.Key).Select(g => g.First()).ToList();
        log.WriteLine($"bench: kernel ceiling: {settings.Count} MatMulNBits settings, resident and streamed ({sizes.StreamedBytes / 1048576} MB)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var rates = new Dictionary<(int, int, int, bool, long, long), (KernelRate Resident, KernelRate Streamed)>();
        foreach (var s in settings)
        {
            rates[s.Key] = (KernelCeilingProbe.Resident(s, work, sizes.ResidentCodeBytes, sizes.ResidentRuns),
                KernelCeilingProbe.Streamed(s, work, sizes.StreamedBytes, sizes.StreamedRuns));
            log.WriteLine($"bench: kernel {s}: resident {rates[s.Key].Resident.WeightsPerSecond / 1e9:F2} G weights/s (best {rates[s.Key].Resident.BestWeightsPerSecond / 1e9:F2}), streamed {rates[s.Key].Streamed.WeightsPerSecond / 1e9:F2} G weights/s ({rates[s.Key].Streamed.BytesPerSecond / 1e9:F2} GB/s; runs {rates[s.Key].Resident.RunMicroseconds:F0} / {rates[s.Key].Streamed.RunMicroseconds:F0} us, kernels {rates[s.Key].Resident.MeanMicroseconds:F0} / {rates[s.Key].Streamed.MeanMicroseconds:F0} us, {rates[s.Key].Streamed.Nodes} nodes)");
        }
        var settingsJson = settings.Select(s => new Dictionary<string, object?>
        {
            ["bits"] = s.Bits, ["block_size"] = s.BlockSize, ["accuracy_level"] = s.AccuracyLevel, ["zero_points"] = s.ZeroPoints,
            ["k"] = s.K, ["n"] = s.N, ["bytes_per_weight"] = Math.Round(s.NodeBytes / (double)(s.K * s.N), 4),
            ["in_models"] = models.Where(m => m.Shapes.Any(x => x.Key == s.Key)).Select(m => m.Variant).ToList(),
            ["resident"] = rates[s.Key].Resident.ToJson(),
            ["streamed"] = rates[s.Key].Streamed.ToJson(),
            ["streamed_over_read_bandwidth"] = readBytesPerSecond > 0 ? Math.Round(rates[s.Key].Streamed.BytesPerSecond / readBytesPerSecond, 4) : null,
        }).ToList();
        var modelsJson = models.Select(m => ModelJson(m, fp32StepMicroseconds, s => rates[s.Key].Resident.BestWeightsPerSecond, s => rates[s.Key].Streamed.BestWeightsPerSecond)).ToList();
        foreach (var m in modelsJson)
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"bench: kernel ceiling {m["variant"]}: step at the resident rate {m["step_at_resident_rate_microseconds"]} us, at the streamed rate {m["step_at_streamed_rate_microseconds"]} us, the goal needs {m["needed_step_microseconds"]} us: {((bool)m["reachable_by_kernels"]! ? "reachable" : "NOT reachable")} by the kernels"));
        return new Dictionary<string, object?>
        {
            ["intra_op_threads"] = GenAiThreads.PhysicalCores(),
            ["last_level_cache_bytes"] = LastLevelCacheBytes(),
            ["resident_code_bytes"] = sizes.ResidentCodeBytes, ["streamed_bytes"] = sizes.StreamedBytes,
            ["resident_runs"] = sizes.ResidentRuns, ["streamed_runs"] = sizes.StreamedRuns,
            ["read_gb_per_second"] = Math.Round(readBytesPerSecond / 1e9, 3),
            ["fp32_step_microseconds"] = Math.Round(fp32StepMicroseconds, 1),
            ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            ["settings"] = settingsJson,
            ["models"] = modelsJson,
            ["note"] = Note,
        };
    }

    private const string Note =
        "each MatMulNBits setting (bits, block, accuracy level, K x N) of the quantized exports timed alone at M = 1 with the Runtime's session settings " +
        "(intra_op_threads, idle threads sleeping), kernel time from ONNX Runtime's profiler: resident = one weight of about resident_code_bytes of codes " +
        "(outputs cut to fit) run resident_runs times, the kernel's arithmetic ceiling (best_weights_per_second: each node's least time, no preemption); streamed = distinct weights of the real shape totalling streamed_bytes " +
        "(several times the last-level cache), what a decode step sees. Per model: floor = sum over its MatMulNBits nodes of K x N / the setting's rate (best_weights_per_second of each regime: each node's least time over the runs, " +
        "what the kernel does when no other process preempts it; the means are beside them); " +
        "rest = its measured batch-1 decode step (the timed rounds, unprofiled) x the share of its batch-1 decode-step profile's run spent outside " +
        "MatMulNBits kernels (profile_rest_microseconds / profile_run_microseconds; the profiled steps and the timed rounds see different loads on a shared " +
        "machine); rest_from: whose step and profile, the default export of the same width where it has none; needed = float32's measured batch-1 decode step / the goal's ratio; reachable_by_kernels = floor at the resident rate + rest <= needed, reachable_at_streamed_rate the same at the streamed rate";

    /// <summary>One model's floors and verdicts (<see cref="StepVerdict"/>) at both rates.</summary>
    public static Dictionary<string, object?> ModelJson(CeilingModel m, double fp32StepMicroseconds,
        Func<MatMulNBitsShape, double> residentRate, Func<MatMulNBitsShape, double> streamedRate)
    {
        double rest = StepVerdict.Rest(m.StepMicroseconds, m.ProfileRunMicroseconds, m.ProfileMatMulNBitsMicroseconds);
        double needed = StepVerdict.Needed(fp32StepMicroseconds, m.GoalRatio);
        var resident = new StepVerdict(StepVerdict.Floor(m.Shapes, residentRate), rest, needed);
        var streamed = new StepVerdict(StepVerdict.Floor(m.Shapes, streamedRate), rest, needed);
        static double R(double v) => Math.Round(v, 1);
        return new Dictionary<string, object?>
        {
            ["variant"] = m.Variant,
            ["goal_over_fp32"] = m.GoalRatio,
            ["matmulnbits_nodes"] = m.Shapes.Sum(s => s.Count),
            ["matmulnbits_weights_per_step"] = m.Shapes.Sum(s => s.Weights),
            ["matmulnbits_bytes_per_step"] = m.Shapes.Sum(s => s.Count * s.NodeBytes),
            ["step_microseconds"] = R(m.StepMicroseconds),
            ["profile_run_microseconds"] = R(m.ProfileRunMicroseconds),
            ["profile_rest_microseconds"] = R(Math.Max(0, m.ProfileRunMicroseconds - m.ProfileMatMulNBitsMicroseconds)),
            ["profile_matmulnbits_microseconds"] = R(m.ProfileMatMulNBitsMicroseconds),
            ["rest_microseconds"] = R(rest),
            ["rest_from"] = m.RestFrom,
            ["floor_resident_microseconds"] = R(resident.FloorMicroseconds),
            ["floor_streamed_microseconds"] = R(streamed.FloorMicroseconds),
            ["step_at_resident_rate_microseconds"] = R(resident.StepMicroseconds),
            ["step_at_streamed_rate_microseconds"] = R(streamed.StepMicroseconds),
            ["needed_step_microseconds"] = R(needed),
            ["best_over_fp32"] = Math.Round(resident.BestRatio(fp32StepMicroseconds), 3),
            ["streamed_over_fp32"] = Math.Round(streamed.BestRatio(fp32StepMicroseconds), 3),
            ["reachable_by_kernels"] = resident.Reachable,
            ["reachable_at_streamed_rate"] = streamed.Reachable,
        };
    }

    /// <summary>The last-level cache of CPU 0 in bytes (sysfs), else 32 MB.</summary>
    public static long LastLevelCacheBytes()
    {
        const long fallback = 32L << 20;
        try
        {
            var caches = Directory.GetDirectories("/sys/devices/system/cpu/cpu0/cache", "index*");
            long best = 0;
            foreach (var c in caches)
            {
                var text = File.ReadAllText(Path.Combine(c, "size")).Trim();
                long unit = text.EndsWith('K') ? 1024 : text.EndsWith('M') ? 1 << 20 : 1;
                if (long.TryParse(text.TrimEnd('K', 'M'), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) best = Math.Max(best, v * unit);
            }
            return best > 0 ? best : fallback;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return fallback; }
    }
}
