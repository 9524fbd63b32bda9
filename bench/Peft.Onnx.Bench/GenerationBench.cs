using System.Diagnostics;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Bench;

/// <summary>
/// Timed greedy generation: whole run, first token, tokens each row produced, this process's CPU time; for a variant's
/// turn in a round (<see cref="Mean"/>), the means per generation over its <see cref="Generations"/> generations.
/// </summary>
public sealed record TimedRun(double Seconds, double TtftSeconds, int Produced, double CpuSeconds, int Generations = 1)
{
    /// <summary>Single generations of one variant in one round as one turn (means per generation).</summary>
    public static TimedRun Mean(IReadOnlyList<TimedRun> runs) =>
        new(runs.Average(r => r.Seconds), runs.Average(r => r.TtftSeconds), runs[^1].Produced, runs.Average(r => r.CpuSeconds), runs.Sum(r => r.Generations));
}

/// <summary>
/// Greedy generation figures of one exported folder at one batch size (ONNX Runtime through our Runtime). Seconds, TTFT,
/// tokens/s, decode tokens/s and CPU seconds are those of the fastest round; the Median* figures are medians over
/// rounds; <see cref="Rounds"/> holds every round in round order (round i of every variant ran in the same round).
/// </summary>
public sealed record GenerationFigures(string Variant, int Batch, int PromptLength, int NewTokens, double Seconds, double TtftSeconds,
    double TokensPerSecond, double DecodeTokensPerSecond, long PeakRssBytes, long RssIncreaseBytes, long WeightBytes, long KvBytesPerStep,
    double BandwidthLimitTokensPerSecond, double FractionOfBandwidthLimit, double CpuSeconds,
    double MedianSeconds, double MedianTokensPerSecond, double MinTokensPerSecond, double MedianTtftSeconds, double MedianDecodeTokensPerSecond,
    long ProcessPeakRssBytes, IReadOnlyList<TimedRun> Rounds);

public static class GenerationBench
{
    /// <summary>Deterministic prompt ids in [3, vocab): no eos, no pad.</summary>
    public static int[][] Prompts(int batch, int length, int vocab) =>
        Enumerable.Range(0, batch).Select(b => Enumerable.Range(0, length).Select(i => 3 + (int)(((long)i * 7919 + b * 31 + 11) % Math.Max(1, vocab - 3))).ToArray()).ToArray();

    public static long WeightBytes(string dir) =>
        Directory.EnumerateFiles(dir).Where(f => f.EndsWith(".onnx", StringComparison.Ordinal) || f.EndsWith(".onnx.data", StringComparison.Ordinal) || f.EndsWith(".data", StringComparison.Ordinal))
            .Sum(f => new FileInfo(f).Length);

    private static readonly TimeSpan WarmUpTime = TimeSpan.FromMilliseconds(600);

    /// <summary>
    /// Each variant's turn in a round lasts at least about this long (as many generations as the base graph needs): a
    /// single 64-token generation of a small model takes ~60 ms, which one scheduler hiccup on a shared machine moves
    /// by 10-20 %.
    /// </summary>
    public static readonly TimeSpan MinTurn = TimeSpan.FromMilliseconds(300);

    /// <summary>Sessions each variant's rounds are spread over (see LoadedVariant.Reload), when turns are sized (<see cref="MinTurn"/>).</summary>
    public const int Loads = 3;

    /// <summary>Generations per turn so that a turn of a variant taking <paramref name="secondsPerGeneration"/> lasts about <paramref name="minTurn"/> (1 to 16).</summary>
    public static int GenerationsPerTurn(double secondsPerGeneration, TimeSpan minTurn) =>
        secondsPerGeneration <= 0 ? 1 : Math.Clamp((int)Math.Ceiling(minTurn.TotalSeconds / secondsPerGeneration), 1, 16);

    public const string MemoryNote =
        "per variant, measured while it loads and warms up (one full-length generation among the warm-up runs): rss_increase is the VmHWM peak " +
        "over that time (reset through /proc/self/clear_refs right before the load) minus RSS before the load; peak_rss is the process RSS " +
        "before the first variant of that batch size loaded plus this variant's rss_increase, about the peak of a process serving this variant " +
        "alone (the first one loaded can reuse heap the process freed earlier, so its rss_increase may read low); " +
        "process_peak_rss is the VmHWM actually reached, with the variants loaded before it still resident";

    /// <summary>One variant on its own (decode-bandwidth runs): the same rounds with nobody to interleave.</summary>
    public static GenerationFigures Run(BenchVariant variant, int batch, int promptLength, int newTokens, double bandwidth, int rounds) =>
        RunInterleaved([variant], batch, promptLength, newTokens, bandwidth, rounds, TimeSpan.Zero)[0];

    /// <summary>
    /// Loads and warms up every variant, then times <paramref name="rounds"/> rounds in which each variant takes one turn,
    /// in a shuffled order (<see cref="Order"/>); a turn is as many generations as the first variant needs to last
    /// <paramref name="minTurn"/> (<see cref="MinTurn"/>; zero: one), interleaved generation by generation with the
    /// other variants' turns; the rounds are spread over <see cref="Loads"/> fresh sessions of every variant. On a shared
    /// machine speed drifts by more than the differences between graphs over the seconds one variant's repeats take; inside a round every variant sees about the same machine,
    /// so per-round ratios against base cancel the drift. Figures come back in <paramref name="variants"/>' order.
    /// </summary>
    public static List<GenerationFigures> RunInterleaved(IReadOnlyList<BenchVariant> variants, int batch, int promptLength, int newTokens,
        double bandwidth, int rounds, TimeSpan minTurn)
    {
        var loaded = new List<LoadedVariant>();
        try
        {
            Collect();
            long processRss = MemoryProbe.CurrentRss();
            foreach (var v in variants) loaded.Add(LoadedVariant.Load(v, batch, promptLength, newTokens));
            // every variant gets the same number of generations per turn, sized on the first (the base graph)
            int generations = minTurn > TimeSpan.Zero ? GenerationsPerTurn(loaded[0].TimeOnce().Seconds, minTurn) : 1;
            int loads = minTurn > TimeSpan.Zero ? Math.Min(Loads, rounds) : 1;
            for (int r = 0; r < rounds; r++)
            {
                if (r > 0 && r * loads / rounds != (r - 1) * loads / rounds)
                    foreach (var lv in loaded) lv.Reload();
                // The previous round's garbage goes now rather than inside someone's timed run.
                Collect();
                // a variant's turn is spread over the round, one generation at a time in turn with the others, so the
                // variants of a round see the same machine to within one generation (~60 ms), not to within a turn
                var turns = loaded.Select(_ => new List<TimedRun>()).ToList();
                for (int n = 0; n < generations; n++)
                    foreach (int v in Order(loaded.Count, r * generations + n))
                        turns[v].Add(loaded[v].TimeOnce());
                for (int v = 0; v < loaded.Count; v++) loaded[v].Rounds.Add(TimedRun.Mean(turns[v]));
            }
            return loaded.Select(lv => lv.Figures(processRss, bandwidth)).ToList();
        }
        finally
        {
            foreach (var lv in loaded) lv.Dispose();
        }
    }

    /// <summary>
    /// The order of the variants' generations in slot <paramref name="slot"/>: a fixed-seed shuffle, so no variant
    /// always follows the same one (what ran just before leaves caches and threads in a state that a rotation, which
    /// keeps the cyclic order, would charge to the same variant every time).
    /// </summary>
    public static int[] Order(int count, int slot)
    {
        var order = Enumerable.Range(0, count).ToArray();
        new Random(slot).Shuffle(order);
        return order;
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>One variant's session, its request, what its load cost in memory, and its timed rounds so far.</summary>
    private sealed class LoadedVariant : IDisposable
    {
        private readonly BenchVariant _variant;
        private OnnxModel _model;
        private readonly GenerationRequest _request;
        private readonly int _batch;
        private readonly int _promptLength;
        private readonly ModelDimensions _dimensions;
        private long _rssIncrease;
        private long _processPeak;

        public List<TimedRun> Rounds { get; } = [];

        private LoadedVariant(BenchVariant variant, OnnxModel model, GenerationRequest request, int batch, int promptLength, ModelDimensions dimensions)
        {
            _variant = variant;
            _model = model;
            _request = request;
            _batch = batch;
            _promptLength = promptLength;
            _dimensions = dimensions;
        }

        public static LoadedVariant Load(BenchVariant variant, int batch, int promptLength, int newTokens)
        {
            var dimensions = ModelConfig.Load(variant.Dir).Dimensions;
            Collect();
            MemoryProbe.ResetPeak();
            long before = MemoryProbe.CurrentRss();
            var model = OnnxModel.Load(variant.Dir, DeviceOptions.Cpu with { Report = null });
            try
            {
                var prompts = Prompts(batch, promptLength, model.VocabSize);
                // No stop token: every row produces exactly newTokens tokens.
                var options = new GenerationOptions { MaxNewTokens = newTokens, DoSample = false, StopTokenIds = [] };
                var request = GenerationRequest.FromIds(prompts.Select(p => (IReadOnlyList<int>)p).ToList(), options);
                if (variant.RowAdapters is { Count: > 0 } rows)
                    request = request with { Adapters = Enumerable.Range(0, batch).Select(i => rows[i % rows.Count]).ToList() };
                var loaded = new LoadedVariant(variant, model, request, batch, promptLength, dimensions);
                loaded.WarmUp(newTokens);
                long peak = MemoryProbe.PeakRss();
                loaded._processPeak = peak;
                loaded._rssIncrease = Math.Max(0, peak - before);
                return loaded;
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }

        /// <summary>
        /// As long as .NET needs to move the per-token methods to optimized code and ORT to size its arena, so the
        /// timed rounds measure neither (ORT GenAI's baseline likewise runs once untimed). Tiering promotes a method
        /// after 30 calls but only once no new tier-0 code has appeared for ~100 ms, so a count alone is not enough:
        /// at least WarmUpTime as well. The first run is full length, so the memory peak taken after the warm-up
        /// holds a timed run's KV cache.
        /// </summary>
        private void WarmUp(int newTokens)
        {
            var shortRequest = _request with { Options = _request.Options with { MaxNewTokens = Math.Min(32, newTokens) } };
            var clock = Stopwatch.StartNew();
            var request = _request;
            do
            {
                using var warm = _model.CreateGenerator(request);
                while (!warm.IsDone) warm.GenerateNextToken();
                request = shortRequest;
            } while (clock.Elapsed < WarmUpTime);
        }

        /// <summary>One timed generation.</summary>
        public TimedRun TimeOnce()
        {
            using var g = _model.CreateGenerator(_request);
            var cpu = ProcessCpuClock.Seconds();
            var clock = Stopwatch.StartNew();
            g.GenerateNextToken();
            var ttft = clock.Elapsed.TotalSeconds;
            int steps = 1;
            while (!g.IsDone) { g.GenerateNextToken(); steps++; }
            var seconds = clock.Elapsed.TotalSeconds;
            return new TimedRun(seconds, ttft, steps, ProcessCpuClock.Seconds() - cpu);
        }

        public GenerationFigures Figures(long processRss, double bandwidth)
        {
            var best = Rounds.MinBy(r => r.Seconds)!;
            int produced = best.Produced;
            long weights = WeightBytes(_variant.Dir);
            var d = _dimensions;
            // One decode step reads every weight once and each row's K and V cache at the mean context length.
            double context = _variant.VirtualTokens + _promptLength + produced / 2.0;
            long kv = (long)(2L * d.NumLayers * d.NumKeyValueHeads * d.HeadDim * 4 * context * _batch);
            double limit = _batch * bandwidth / (weights + kv);
            double decodeTps = DecodeTokensPerSecond(best, _batch);
            var tokensPerSecond = Rounds.Select(r => _batch * r.Produced / r.Seconds).ToList();
            return new GenerationFigures(_variant.Name, _batch, _promptLength, produced, best.Seconds, best.TtftSeconds, _batch * produced / best.Seconds,
                decodeTps, processRss + _rssIncrease, _rssIncrease, weights, kv, limit, limit > 0 ? decodeTps / limit : 0, best.CpuSeconds,
                Spread.Of(Rounds.Select(r => r.Seconds)).Median, Spread.Of(tokensPerSecond).Median, tokensPerSecond.Min(),
                Spread.Of(Rounds.Select(r => r.TtftSeconds)).Median, Spread.Of(Rounds.Select(r => DecodeTokensPerSecond(r, _batch))).Median,
                _processPeak, Rounds.ToList());
        }

        /// <summary>
        /// A new session for the same folder, warmed up like the first (the timed rounds so far and the memory figures of
        /// the first load stay): where ORT puts a session's buffers moves its speed by up to ~10 % from one load to the
        /// next on this machine, even between two sessions of the same graph, so rounds are spread over several loads.
        /// </summary>
        public void Reload()
        {
            _model.Dispose();
            _model = OnnxModel.Load(_variant.Dir, DeviceOptions.Cpu with { Report = null });
            WarmUp(_request.Options.MaxNewTokens ?? 0);
        }

        public void Dispose() => _model.Dispose();
    }

    /// <summary>Tokens after the first over the time after the first (0 for a one-token run).</summary>
    public static double DecodeTokensPerSecond(TimedRun r, int batch) =>
        r.Produced > 1 && r.Seconds > r.TtftSeconds ? batch * (r.Produced - 1) / (r.Seconds - r.TtftSeconds) : 0;
}
