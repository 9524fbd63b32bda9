using System.Diagnostics;
using System.Text.Json;
using Peft.Onnx.Core;

namespace Peft.Onnx.Bench;

/// <summary>What one `bench` run measures (sizes of every section).</summary>
public sealed record BenchSettings(
    string BaseDir, int PromptLength, int NewTokens, int[] BatchSizes, int Repeats, bool Quick,
    bool Generation, bool GenAi, bool Export, bool Trainer,
    bool Export560m, int TrainBatch, int TrainSeq, int TrainSteps, long BandwidthBytes, string[] DecodeModels)
{
    /// <summary>Quantized widths to export and decode against float32 (bench --quantize int8,int4); empty: no such section.</summary>
    public string[] Quantize { get; init; } = [];

    /// <summary>The multi-adapter section (bench --multi-adapter): 8 LoRA adapters on one base vs the base, merged exports and ORT GenAI.</summary>
    public bool MultiAdapter { get; init; }
}

/// <summary>
/// `bench`: every comparison inside one run (so the machine's drift hits both sides alike): generation of the base graph vs each adapter export,
/// ours vs ORT GenAI on the same folders, export vs a plain copy of the same bytes, each tuner's training step vs the
/// base model's forward + backward. Returns one JSON-ready dictionary.
/// </summary>
public static class BenchRunner
{
    public static readonly string[] TrainerMethods = ["lora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning"];

    public static Dictionary<string, object?> Run(BenchSettings s, TextWriter log)
    {
        var total = Stopwatch.StartNew();
        var work = Path.Combine(Path.GetTempPath(), $"peft-onnx-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        var result = new Dictionary<string, object?>
        {
            ["model"] = Path.GetFullPath(s.BaseDir),
            ["device"] = "cpu",
            ["cores"] = Environment.ProcessorCount,
            ["quick"] = s.Quick,
            ["prompt_length"] = s.PromptLength,
            ["new_tokens"] = s.NewTokens,
            ["batch_sizes"] = s.BatchSizes,
        };
        var sections = new Dictionary<string, double>();
        var lap = Stopwatch.StartNew();
        void Lap(string name) { sections[name] = R(lap.Elapsed.TotalSeconds, 2); lap.Restart(); }
        try
        {
            // Memory bandwidth first, on a quiet process.
            var bandwidth = MemoryProbe.ReadBandwidth(s.BandwidthBytes);
            result["bandwidth"] = new Dictionary<string, object?>
            {
                ["array_bytes"] = s.BandwidthBytes,
                ["read_bytes_per_second"] = Math.Round(bandwidth),
                ["read_gb_per_second"] = Math.Round(bandwidth / 1e9, 3),
                ["note"] = "all cores summing one array; the limit per variant is batch x bandwidth / (weights and KV-cache bytes read per decode step). Weights that fit in the last-level cache can beat it (fraction above 1)",
            };
            log.WriteLine($"bench: read bandwidth {bandwidth / 1e9:F2} GB/s");
            Lap("bandwidth");

            var ours = new List<GenerationFigures>();
            if (s.Generation || s.GenAi)
            {
                var variants = AdapterVariants.Export(s.BaseDir, work, log);
                Lap("adapters_and_exports");
                string? genAiNote = null;
                var baseline = s.GenAi ? GenAiBaseline.Prepare(!s.Quick, log, out genAiNote) : null;
                var runs = new List<Dictionary<string, object?>>();
                var controls = new List<GenerationFigures>();
                foreach (var b in s.BatchSizes)
                {
                    // A second session of the base graph runs in the rounds as a control: identical graphs, so its
                    // ratios to base show how far this run's noise alone moves them.
                    var control = new BenchVariant(ControlVariant, variants.Single(v => v.Name == "base").Dir, 0);
                    var timed = GenerationBench.RunInterleaved([.. variants, control], b, s.PromptLength, s.NewTokens, bandwidth, s.Repeats,
                        s.Quick ? TimeSpan.Zero : GenerationBench.MinTurn);
                    controls.Add(timed[^1]);
                    var figures = timed[..^1];
                    foreach (var f in figures) log.WriteLine($"bench: {f.Variant} batch {b}: {f.TokensPerSecond:F1} tokens/s best, {f.MedianTokensPerSecond:F1} median");
                    ours.AddRange(figures);
                    // GenAI after the rounds of this batch size, each variant's run right after the next: its figures
                    // are compared with our best round. --quick: one GenAI run (base graph, first batch size) so the
                    // smoke test stays short.
                    if (baseline != null)
                        foreach (var (v, f) in variants.Zip(figures))
                            if (!s.Quick || runs.Count == 0) runs.Add(GenAiRun(baseline, v, f, s, log));
                }
                ours = ours.OrderBy(g => variants.FindIndex(v => v.Name == g.Variant)).ThenBy(g => Array.IndexOf(s.BatchSizes, g.Batch)).ToList();
                result["generation"] = ours.Select(g => GenerationJson(g, ours.FirstOrDefault(o => o.Variant == "base" && o.Batch == g.Batch))).ToList();
                result["generation_control"] = controls.Select(g => GenerationJson(g, ours.FirstOrDefault(o => o.Variant == "base" && o.Batch == g.Batch))).ToList();
                result["generation_note"] = GenerationNote(s.Repeats);
                result["genai"] = s.GenAi
                    ? new Dictionary<string, object?> { ["available"] = baseline != null, ["note"] = genAiNote, ["threads_note"] = GenAiThreadsNote, ["runs"] = runs }
                    : Skipped("skipped (--no-genai or --skip genai)");
                Lap("generation_and_genai");
            }
            else result["genai"] = Skipped("skipped (--no-genai or --skip genai)");

            if (s.DecodeModels.Length > 0)
            {
                result["decode_bandwidth"] = s.DecodeModels.Select(m => DecodeBandwidthBench.Run(m, s, work, log)).ToList();
                Lap("decode_bandwidth");
            }

            if (s.Quantize.Length > 0)
            {
                result["quantized"] = QuantizedDecodeBench.Run(s, work, log);
                Lap("quantized");
            }

            if (s.MultiAdapter)
            {
                result["multi_adapter"] = MultiAdapterBench.Run(s, work, log);
                Lap("multi_adapter");
            }

            if (s.Export)
            {
                var real = FindUp(Path.Combine("tests", "fixtures", "peft-doc-configs", "bloomz-560m", "config.json"))
                    ?? throw new PeftOnnxException("bench: tests/fixtures/peft-doc-configs/bloomz-560m/config.json not found above the current folder");
                var e = s.Export560m ? ExportBench.Run(real, "bloomz-560m", null, null, null, null, work, log)
                    : s.Quick ? ExportBench.Run(real, "bloom-mini", 64, 2, 4, 1000, work, log, rounds: 1)
                    : ExportBench.Run(real, "bloom-small", 512, 4, 8, 32000, work, log);
                result["export"] = new Dictionary<string, object?>
                {
                    ["config"] = e.Config, ["hidden_size"] = e.HiddenSize, ["layers"] = e.Layers, ["vocab_size"] = e.Vocab,
                    ["checkpoint_bytes"] = e.CheckpointBytes, ["export_seconds"] = R(e.ExportSeconds), ["export_wall_seconds"] = R(e.ExportWallSeconds),
                    ["export_peak_rss_bytes"] = e.ExportPeakRssBytes, ["export_peak_rss_mb"] = Math.Round(e.ExportPeakRssBytes / 1048576.0, 1),
                    ["copy_seconds"] = R(e.CopySeconds), ["export_over_copy"] = Math.Round(e.ExportOverCopy, 2),
                    ["write_random_checkpoint_seconds"] = R(e.WriteCheckpointSeconds),
                    ["copy_seconds_before"] = R(e.CopySecondsBefore), ["copy_seconds_after"] = R(e.CopySecondsAfter),
                    ["largest_tensor_bytes"] = e.LargestTensorBytes, ["lora_rank"] = e.LoraRank,
                    ["memory_goal_bytes"] = 1536L * 1048576 + e.LargestTensorBytes,
                    ["variants"] = e.Variants.Select(v => new Dictionary<string, object?>
                    {
                        ["name"] = v.Name, ["dtype"] = v.DType, ["lora_merged"] = v.LoraMerged, ["export_seconds"] = R(v.Seconds),
                        ["export_wall_seconds"] = R(v.WallSeconds), ["export_cpu_seconds"] = R(v.CpuSeconds), ["export_over_copy"] = Math.Round(v.OverCopy, 2), ["copy_seconds"] = R(v.CopySeconds),
                        ["run_export_over_copy"] = v.RunRatios.Select(x => Math.Round(x, 2)).ToList(),
                        ["peak_rss_bytes"] = v.PeakRssBytes, ["peak_rss_mb"] = Math.Round(v.PeakRssBytes / 1048576.0, 1), ["phases"] = v.Phases,
                    }).ToList(),
                    ["note"] = (s.Export560m ? "real bloomz-560m config, random weights" : "bloomz-560m config with smaller sizes (--export-560m for the real size)")
                        + $"; each export includes the ONNX Runtime check; top-level export_* figures are the fp32 base export; every variant is exported {(s.Quick ? 1 : ExportBench.Rounds)} times (all variants, then all again) and a copy + fsync of the checkpoint runs before each export and after the last: each run's ratio divides by the mean of the two copies beside it (run_export_over_copy), a variant's export_over_copy is the mean of its runs' ratios and its seconds, CPU seconds and copy_seconds are means (peak RSS the highest, phases the last run's); the top-level copy_seconds is the mean of all copies; memory goal = 1.5 GB + largest tensor",
                };
                Lap("export");
            }

            if (s.Trainer)
            {
                var baseFb = TrainerBench.BaseForwardBackward(s.BaseDir, s.TrainBatch, s.TrainSeq, s.TrainSteps, warmUp: !s.Quick);
                log.WriteLine($"bench: base forward+backward {baseFb.StepSeconds * 1000:F1} ms/step");
                var methods = new List<Dictionary<string, object?>>();
                foreach (var m in TrainerMethods)
                {
                    var t = TrainerBench.Method(s.BaseDir, m, s.TrainBatch, s.TrainSeq, s.TrainSteps, warmUp: !s.Quick);
                    log.WriteLine($"bench: train {m} {t.StepSeconds * 1000:F1} ms/step");
                    var j = TrainerJson(t);
                    j["step_over_base_forward_backward"] = Math.Round(t.StepSeconds / baseFb.StepSeconds, 3);
                    methods.Add(j);
                }
                result["trainer"] = new Dictionary<string, object?>
                {
                    ["batch"] = s.TrainBatch, ["seq_length"] = s.TrainSeq, ["steps"] = s.TrainSteps, ["warm_up_step"] = !s.Quick, ["optimizer"] = "adamw",
                    ["base_forward_backward"] = TrainerJson(baseFb),
                    ["methods"] = methods,
                };
                Lap("trainer");
            }
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
        result["seconds"] = R(total.Elapsed.TotalSeconds);
        result["section_seconds"] = sections;
        result["peak_rss_bytes"] = MemoryProbe.PeakRss();
        result["peak_rss_note"] = "generation: " + GenerationBench.MemoryNote + ". export peak RSS comes from the export child process";
        result["goals"] = BenchGoals.Judge(JsonSerializer.SerializeToElement(result));
        return result;
    }

    /// <summary>ORT GenAI's own session defaults: intra-op threads = hardware threads / 2, at least 1 (model.cpp, CreateSessionOptionsFromConfig).</summary>
    public static string GenAiThreadsNote =>
        $"GenAI runs with its defaults (intra-op threads = hardware threads / 2 = {Math.Max(1, Environment.ProcessorCount / 2)} here); ours with ORT's (one per physical core, idle threads sleep)";

    private static Dictionary<string, object?> Skipped(string note) =>
        new() { ["available"] = false, ["note"] = note, ["runs"] = Array.Empty<object>() };

    internal static Dictionary<string, object?> GenAiRun(GenAiBaseline baseline, BenchVariant v, GenerationFigures mine, BenchSettings s, TextWriter log)
    {
        var g = baseline.Run(v.Dir, mine.PromptLength, s.NewTokens, mine.Batch, s.Repeats, out var runNote);
        var run = new Dictionary<string, object?>
        {
            ["variant"] = v.Name, ["batch"] = mine.Batch,
            ["ours_tokens_per_second"] = R(mine.TokensPerSecond), ["ours_ttft_seconds"] = R(mine.TtftSeconds, 6), ["ours_cpu_seconds"] = R(mine.CpuSeconds, 6),
        };
        if (g is { } j)
        {
            var tps = j.GetProperty("tokens_per_second").GetDouble();
            var ttft = j.GetProperty("ttft_seconds").GetDouble();
            var cpu = j.TryGetProperty("cpu_seconds", out var c) ? c.GetDouble() : 0;
            run["genai_tokens_per_second"] = tps;
            run["genai_ttft_seconds"] = ttft;
            run["genai_cpu_seconds"] = cpu;
            run["ours_over_genai"] = tps > 0 ? Math.Round(mine.TokensPerSecond / tps, 3) : null;
            run["ours_ttft_over_genai"] = ttft > 0 ? Math.Round(mine.TtftSeconds / ttft, 3) : null;
            // CPU seconds for the same tokens: the work each side did, independent of the share of cores a busy machine gave it
            run["genai_cpu_over_ours"] = mine.CpuSeconds > 0 && cpu > 0 ? Math.Round(cpu / mine.CpuSeconds, 3) : null;
            log.WriteLine($"bench: genai {v.Name} batch {mine.Batch}: {tps:F1} tokens/s");
        }
        else run["note"] = runNote;
        return run;
    }

    private static string GenerationNote(int rounds) =>
        $"every variant of one batch size is loaded and warmed up, then {rounds} rounds run in which each variant takes one turn, " +
        "in an order shuffled (fixed seeds) for every generation slot, so no variant always runs after the same one; a turn is generations_per_turn generations (as many as the base graph needs for ~0.3 s, " +
        "the same for every variant), taken one at a time in turn with the other variants' and timed as their mean; every variant's session is loaded anew (and warmed up) " +
        $"before each third of the rounds ({GenerationBench.Loads} loads), since where a session's buffers land moves its speed by up to ~10 %. seconds, ttft_seconds, tokens_per_second, decode_tokens_per_second and cpu_seconds are the fastest round's; " +
        "median_* are medians over rounds; tokens_per_second_over_base compares best rounds, median_tokens_per_second_over_base medians; " +
        "paired_over_base is the median over rounds of base seconds / variant seconds in the same round (= tokens/s over base's, same tokens), " +
        "paired_decode_over_base the same for decode tokens/s, paired_cpu_over_base for this process's CPU seconds (base / variant: the work done, " +
        "less sensitive than wall time to the share of cores a busy machine gives); their *_spread give min, quartiles and max over rounds. " +
        "The paired ratios cancel the machine's drift between rounds: they are the figures for the merged / baked vs base goals. " +
        $"generation_control holds a second session of the base graph ({ControlVariant}) timed in the same rounds: its ratios to base are this run's noise floor";

    public const string ControlVariant = "base_control";

    private static Dictionary<string, object?> GenerationJson(GenerationFigures g, GenerationFigures? baseFigures)
    {
        var json = GenerationJsonBest(g, baseFigures);
        json["rounds"] = g.Rounds.Count;
        json["generations_per_turn"] = g.Rounds.Count > 0 ? g.Rounds[0].Generations : 0;
        json["median_seconds"] = R(g.MedianSeconds);
        json["median_tokens_per_second"] = R(g.MedianTokensPerSecond);
        json["min_tokens_per_second"] = R(g.MinTokensPerSecond);
        json["median_ttft_seconds"] = R(g.MedianTtftSeconds, 6);
        json["median_decode_tokens_per_second"] = R(g.MedianDecodeTokensPerSecond);
        json["median_tokens_per_second_over_base"] = baseFigures is { MedianTokensPerSecond: > 0 } b ? Math.Round(g.MedianTokensPerSecond / b.MedianTokensPerSecond, 3) : null;
        if (baseFigures != null && baseFigures.Rounds.Count == g.Rounds.Count)
        {
            var rounds = g.Rounds.Zip(baseFigures.Rounds).ToList();
            var paired = Spread.Of(rounds.Select(p => p.Second.Seconds / p.First.Seconds));
            var decodeRatios = rounds.Select(p => GenerationBench.DecodeTokensPerSecond(p.First, g.Batch) / GenerationBench.DecodeTokensPerSecond(p.Second, g.Batch)).ToList();
            // One-token runs have no decode phase: no decode ratio then.
            var pairedDecode = decodeRatios.All(double.IsFinite) ? Spread.Of(decodeRatios) : null;
            json["paired_over_base"] = Math.Round(paired.Median, 4);
            json["paired_over_base_spread"] = SpreadJson(paired);
            json["paired_decode_over_base"] = pairedDecode != null ? Math.Round(pairedDecode.Median, 4) : null;
            json["paired_decode_over_base_spread"] = pairedDecode != null ? SpreadJson(pairedDecode) : null;
            var cpuRatios = rounds.Select(p => p.Second.CpuSeconds / p.First.CpuSeconds).ToList();
            var pairedCpu = cpuRatios.All(double.IsFinite) ? Spread.Of(cpuRatios) : null;
            json["paired_cpu_over_base"] = pairedCpu != null ? Math.Round(pairedCpu.Median, 4) : null;
            json["paired_cpu_over_base_spread"] = pairedCpu != null ? SpreadJson(pairedCpu) : null;
        }
        else
        {
            json["paired_over_base"] = null;
            json["paired_over_base_spread"] = null;
            json["paired_decode_over_base"] = null;
            json["paired_decode_over_base_spread"] = null;
            json["paired_cpu_over_base"] = null;
            json["paired_cpu_over_base_spread"] = null;
        }
        json["process_peak_rss_bytes"] = g.ProcessPeakRssBytes;
        json["round_seconds"] = g.Rounds.Select(r => R(r.Seconds, 6)).ToList();
        json["round_ttft_seconds"] = g.Rounds.Select(r => R(r.TtftSeconds, 6)).ToList();
        json["round_cpu_seconds"] = g.Rounds.Select(r => R(r.CpuSeconds, 6)).ToList();
        return json;
    }

    private static Dictionary<string, object?> SpreadJson(Spread s) => new()
    {
        ["median"] = Math.Round(s.Median, 4), ["min"] = Math.Round(s.Min, 4), ["q1"] = Math.Round(s.Q1, 4), ["q3"] = Math.Round(s.Q3, 4), ["max"] = Math.Round(s.Max, 4),
    };

    private static Dictionary<string, object?> GenerationJsonBest(GenerationFigures g, GenerationFigures? baseFigures) => new()
    {
        ["variant"] = g.Variant,
        ["batch"] = g.Batch,
        ["prompt_length"] = g.PromptLength,
        ["new_tokens"] = g.NewTokens,
        ["seconds"] = R(g.Seconds),
        ["ttft_seconds"] = R(g.TtftSeconds, 6),
        ["tokens_per_second"] = R(g.TokensPerSecond),
        ["decode_tokens_per_second"] = R(g.DecodeTokensPerSecond),
        ["peak_rss_bytes"] = g.PeakRssBytes,
        ["peak_rss_mb"] = Math.Round(g.PeakRssBytes / 1048576.0, 1),
        ["rss_increase_bytes"] = g.RssIncreaseBytes,
        ["rss_increase_mb"] = Math.Round(g.RssIncreaseBytes / 1048576.0, 1),
        ["weight_bytes"] = g.WeightBytes,
        ["kv_cache_bytes_per_step"] = g.KvBytesPerStep,
        ["bandwidth_limit_tokens_per_second"] = R(g.BandwidthLimitTokensPerSecond),
        ["fraction_of_bandwidth_limit"] = Math.Round(g.FractionOfBandwidthLimit, 4),
        ["cpu_seconds"] = R(g.CpuSeconds, 6),
        ["tokens_per_second_over_base"] = baseFigures is { TokensPerSecond: > 0 } b ? Math.Round(g.TokensPerSecond / b.TokensPerSecond, 3) : null,
    };

    private static Dictionary<string, object?> TrainerJson(TrainerFigures t) => new()
    {
        ["method"] = t.Method,
        ["step_seconds"] = R(t.StepSeconds, 5),
        ["samples_per_second"] = R(t.SamplesPerSecond),
        ["trainable_parameters"] = t.TrainableParameters,
    };

    private static double Number(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;

    internal static double R(double v, int digits = 4) => double.IsFinite(v) ? Math.Round(v, digits) : 0;

    /// <summary>A path relative to the current folder or to a folder above it (or above the executable).</summary>
    public static string? FindUp(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            {
                var p = Path.Combine(d.FullName, relative);
                if (File.Exists(p) || Directory.Exists(p)) return p;
            }
        return null;
    }

    /// <summary>The short table bench prints without --json.</summary>
    public static void PrintTable(Dictionary<string, object?> r, TextWriter o)
    {
        var json = JsonDocument.Parse(JsonSerializer.Serialize(r)).RootElement;
        o.WriteLine($"bench {json.GetProperty("model").GetString()} ({json.GetProperty("cores").GetInt32()} cores), {json.GetProperty("seconds").GetDouble():F1} s");
        if (json.TryGetProperty("bandwidth", out var bw)) o.WriteLine($"read bandwidth {bw.GetProperty("read_gb_per_second").GetDouble():F2} GB/s");
        if (json.TryGetProperty("generation", out var gen))
        {
            o.WriteLine($"{"variant",-15} {"batch",5} {"tok/s",9} {"median",9} {"decode",9} {"ttft ms",8} {"vs base",7} {"paired",7} {"paired range",13} {"dec-pair",8} {"bw-lim",7} {"rss MB",7} {"+rss MB",7}");
            foreach (var g in gen.EnumerateArray())
            {
                var range = g.TryGetProperty("paired_over_base_spread", out var sp) && sp.ValueKind == JsonValueKind.Object
                    ? $"{sp.GetProperty("min").GetDouble():F3}-{sp.GetProperty("max").GetDouble():F3}" : "";
                o.WriteLine($"{g.GetProperty("variant").GetString(),-15} {g.GetProperty("batch").GetInt32(),5} {g.GetProperty("tokens_per_second").GetDouble(),9:F1} {Number(g, "median_tokens_per_second"),9:F1} " +
                    $"{g.GetProperty("decode_tokens_per_second").GetDouble(),9:F1} {g.GetProperty("ttft_seconds").GetDouble() * 1000,8:F2} {Number(g, "tokens_per_second_over_base"),7:F2} " +
                    $"{Number(g, "paired_over_base"),7:F3} {range,13} {Number(g, "paired_decode_over_base"),8:F3} " +
                    $"{g.GetProperty("fraction_of_bandwidth_limit").GetDouble(),7:P0} {g.GetProperty("peak_rss_mb").GetDouble(),7:F0} {g.GetProperty("rss_increase_mb").GetDouble(),7:F0}");
            }
            o.WriteLine("(tok/s, decode, ttft, vs base: best round; paired: median over rounds of tok/s over base's in the same round, range min-max; dec-pair: the same for decode)");
        }
        if (json.TryGetProperty("generation_control", out var controls))
            foreach (var c in controls.EnumerateArray())
                if (c.TryGetProperty("paired_over_base_spread", out var sp) && sp.ValueKind == JsonValueKind.Object)
                    o.WriteLine($"control (base graph, second session) batch {c.GetProperty("batch").GetInt32()}: paired {Number(c, "paired_over_base"):F3} " +
                        $"(IQR {sp.GetProperty("q1").GetDouble():F3}-{sp.GetProperty("q3").GetDouble():F3}, range {sp.GetProperty("min").GetDouble():F3}-{sp.GetProperty("max").GetDouble():F3}), " +
                        $"dec-pair {Number(c, "paired_decode_over_base"):F3}, cpu-pair {Number(c, "paired_cpu_over_base"):F3}: noise floor of the paired ratios");
        if (json.TryGetProperty("genai", out var ga))
        {
            if (!ga.GetProperty("available").GetBoolean()) o.WriteLine($"ORT GenAI: {ga.GetProperty("note").GetString()}");
            foreach (var g in ga.GetProperty("runs").EnumerateArray())
                o.WriteLine(g.TryGetProperty("ours_over_genai", out var ratio) && ratio.ValueKind == JsonValueKind.Number
                    ? $"GenAI {g.GetProperty("variant").GetString(),-15} batch {g.GetProperty("batch").GetInt32()}: {g.GetProperty("genai_tokens_per_second").GetDouble():F1} tok/s, ours/GenAI {ratio.GetDouble():F2}, " +
                      $"TTFT ours/GenAI {Number(g, "ours_ttft_over_genai"):F2}, CPU GenAI/ours {Number(g, "genai_cpu_over_ours"):F2}"
                    : $"GenAI {g.GetProperty("variant").GetString(),-15} batch {g.GetProperty("batch").GetInt32()}: {g.GetProperty("note").GetString()}");
        }
        if (json.TryGetProperty("decode_bandwidth", out var db))
            foreach (var m in db.EnumerateArray())
                o.WriteLine($"decode {m.GetProperty("model").GetString()} batch 1 fp32: {m.GetProperty("decode_tokens_per_second").GetDouble():F2} tok/s, " +
                    $"bandwidth limit {m.GetProperty("bandwidth_limit_tokens_per_second").GetDouble():F2} tok/s ({m.GetProperty("fraction_of_bandwidth_limit").GetDouble():P0}); " +
                    $"GenAI {Number(m, "genai_decode_tokens_per_second"):F2} tok/s ({Number(m, "genai_fraction_of_bandwidth_limit"):P0})");
        if (json.TryGetProperty("export", out var e))
            o.WriteLine($"export {e.GetProperty("config").GetString()} ({e.GetProperty("checkpoint_bytes").GetInt64() / 1048576.0:F0} MB): {e.GetProperty("export_seconds").GetDouble():F2} s, peak RSS {e.GetProperty("export_peak_rss_mb").GetDouble():F0} MB; copy {e.GetProperty("copy_seconds").GetDouble():F2} s (x{e.GetProperty("export_over_copy").GetDouble():F1})");
        if (json.TryGetProperty("export", out var ex) && ex.TryGetProperty("variants", out var variants))
            foreach (var v in variants.EnumerateArray())
                o.WriteLine($"  export {v.GetProperty("name").GetString(),-10} {v.GetProperty("export_seconds").GetDouble(),6:F2} s ({v.GetProperty("export_cpu_seconds").GetDouble():F2} s CPU), x{v.GetProperty("export_over_copy").GetDouble():F2} the copy, peak RSS {v.GetProperty("peak_rss_mb").GetDouble():F0} MB");
        if (json.TryGetProperty("quantized", out var q)) QuantizedTable.Print(q, o);
        if (json.TryGetProperty("multi_adapter", out var ma)) MultiAdapterTable.Print(ma, o);
        if (json.TryGetProperty("trainer", out var t))
        {
            var b = t.GetProperty("base_forward_backward");
            o.WriteLine($"train (batch {t.GetProperty("batch").GetInt32()}, seq {t.GetProperty("seq_length").GetInt32()}): base fwd+bwd {b.GetProperty("step_seconds").GetDouble() * 1000:F1} ms, {b.GetProperty("samples_per_second").GetDouble():F1} samples/s");
            foreach (var m in t.GetProperty("methods").EnumerateArray())
                o.WriteLine($"  {m.GetProperty("method").GetString(),-14} {m.GetProperty("step_seconds").GetDouble() * 1000,8:F1} ms/step {m.GetProperty("samples_per_second").GetDouble(),8:F1} samples/s  x{m.GetProperty("step_over_base_forward_backward").GetDouble():F2} of base");
        }
        if (json.TryGetProperty("goals", out var goals))
            foreach (var line in BenchGoals.Lines(goals)) o.WriteLine(line);
    }
}
