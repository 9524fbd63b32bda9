using System.Diagnostics;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Cli.Bench;

/// <summary>Greedy generation figures of one exported folder at one batch size (ONNX Runtime through our Runtime).</summary>
public sealed record GenerationFigures(string Variant, int Batch, int PromptLength, int NewTokens, double Seconds, double TtftSeconds,
    double TokensPerSecond, double DecodeTokensPerSecond, long PeakRssBytes, long RssIncreaseBytes, long WeightBytes, long KvBytesPerStep,
    double BandwidthLimitTokensPerSecond, double FractionOfBandwidthLimit, double CpuSeconds);

public static class GenerationBench
{
    /// <summary>Deterministic prompt ids in [3, vocab): no eos, no pad.</summary>
    public static int[][] Prompts(int batch, int length, int vocab) =>
        Enumerable.Range(0, batch).Select(b => Enumerable.Range(0, length).Select(i => 3 + (int)(((long)i * 7919 + b * 31 + 11) % Math.Max(1, vocab - 3))).ToArray()).ToArray();

    public static long WeightBytes(string dir) =>
        Directory.EnumerateFiles(dir).Where(f => f.EndsWith(".onnx", StringComparison.Ordinal) || f.EndsWith(".onnx.data", StringComparison.Ordinal) || f.EndsWith(".data", StringComparison.Ordinal))
            .Sum(f => new FileInfo(f).Length);

    private static readonly TimeSpan WarmUpTime = TimeSpan.FromMilliseconds(600);

    public static GenerationFigures Run(BenchVariant variant, int batch, int promptLength, int newTokens, double bandwidth, int repeats)
    {
        var config = ModelConfig.Load(variant.Dir);
        var d = config.Dimensions;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        MemoryProbe.ResetPeak();
        long before = MemoryProbe.CurrentRss();
        using var model = OnnxModel.Load(variant.Dir, DeviceOptions.Cpu with { Report = null });
        var prompts = Prompts(batch, promptLength, model.VocabSize);
        // No stop token: every row produces exactly newTokens tokens.
        var options = new GenerationOptions { MaxNewTokens = newTokens, DoSample = false, StopTokenIds = [] };
        var request = GenerationRequest.FromIds(prompts.Select(p => (IReadOnlyList<int>)p).ToList(), options);
        // Warm-up as long as .NET needs to move the per-token methods to optimized code and ORT to size its arena, so
        // the timed runs measure neither (ORT GenAI's baseline likewise runs once untimed). Tiering promotes a method
        // after 30 calls but only once no new tier-0 code has appeared for ~100 ms, so a count alone left the first
        // variant of a run (base) on tier-0 code: warm for at least WarmUpTime as well.
        var warmOptions = options with { MaxNewTokens = Math.Min(32, newTokens) };
        var warmClock = Stopwatch.StartNew();
        do
        {
            using var warm = model.CreateGenerator(request with { Options = warmOptions });
            while (!warm.IsDone) warm.GenerateNextToken();
        } while (warmClock.Elapsed < WarmUpTime);
        double best = double.MaxValue, bestTtft = 0, bestCpu = 0;
        int produced = 0;
        using var self = Process.GetCurrentProcess();
        for (int r = 0; r < repeats; r++)
        {
            using var g = model.CreateGenerator(request);
            self.Refresh();
            var cpu = self.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            g.GenerateNextToken();
            var ttft = clock.Elapsed.TotalSeconds;
            int steps = 1;
            while (!g.IsDone) { g.GenerateNextToken(); steps++; }
            var seconds = clock.Elapsed.TotalSeconds;
            self.Refresh();
            if (seconds < best) { best = seconds; bestTtft = ttft; produced = steps; bestCpu = (self.TotalProcessorTime - cpu).TotalSeconds; }
        }
        var peak = MemoryProbe.PeakRss();
        long weights = WeightBytes(variant.Dir);
        // One decode step reads every weight once and each row's K and V cache at the mean context length.
        double context = variant.VirtualTokens + promptLength + produced / 2.0;
        long kv = (long)(2L * d.NumLayers * d.NumKeyValueHeads * d.HeadDim * 4 * context * batch);
        double limit = batch * bandwidth / (weights + kv);
        double decodeTps = produced > 1 ? batch * (produced - 1) / (best - bestTtft) : 0;
        return new GenerationFigures(variant.Name, batch, promptLength, produced, best, bestTtft, batch * produced / best, decodeTps, peak, Math.Max(0, peak - before),
            weights, kv, limit, limit > 0 ? decodeTps / limit : 0, bestCpu);
    }
}
