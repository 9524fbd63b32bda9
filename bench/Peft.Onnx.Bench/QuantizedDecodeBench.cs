using Peft.Onnx.Core;

namespace Peft.Onnx.Bench;

/// <summary>
/// `bench --quantize int8,int4`: one random checkpoint of bloomz-560m's real config (--quick: a small one) exported
/// float32 and with each asked width (default export options, each export in a child process between two copies of
/// the checkpoint), then decoded at batch 1 (the goal figures) and batch 8 by our Runtime in interleaved rounds and
/// by ORT GenAI on the same folders. Each model's bandwidth limit is the memory bandwidth over the bytes one decode
/// step reads: its weight files, less the float lookup table of a quantized export (a tied head gets its own quantized
/// copy, and the lookup reads one row per token), plus the KV cache. When a quantized goal is missed, ONNX Runtime's
/// profile of a decode step of each quantized model says which kernels ran.
/// </summary>
public static class QuantizedDecodeBench
{
    public static readonly string[] Widths = ["int8", "int4"];

    /// <summary>Timed rounds at the full size: a bloomz-560m float32 generation of 64 tokens takes ~15 s on two cores.</summary>
    public const int MaxRounds = 5;

    public static Dictionary<string, object?> Run(BenchSettings s, string work, TextWriter log)
    {
        var real = BenchRunner.FindUp(Path.Combine("tests", "fixtures", "peft-doc-configs", "bloomz-560m", "config.json"))
            ?? throw new PeftOnnxException("bench: tests/fixtures/peft-doc-configs/bloomz-560m/config.json not found above the current folder");
        var config = s.Quick ? RandomCheckpoint.BloomConfig(real, 64, 2, 4, 1000) : RandomCheckpoint.BloomConfig(real);
        var label = s.Quick ? "bloom-mini" : "bloomz-560m";
        int hidden = config["hidden_size"]!.GetValue<int>(), vocab = config["vocab_size"]!.GetValue<int>();
        var checkpoint = Path.Combine(work, "quant-ckpt");
        var names = new[] { "fp32" }.Concat(s.Quantize).ToList();
        var dirs = names.ToDictionary(n => n, n => Path.Combine(work, "quant-" + n));
        // the int4 options ride along with the default int4 export, decoded at batch 1 only
        var options = s.Quantize.Contains("int4") ? Int4Option.All : [];
        foreach (var o in options) dirs[o.Name] = Path.Combine(work, "quant-" + o.Name);
        try
        {
            long bytes = RandomCheckpoint.WriteAny(checkpoint, config);
            log.WriteLine($"bench: wrote a random {label} checkpoint ({bytes / 1048576.0:F0} MB) for the quantized exports");
            var exports = Export(checkpoint, names, dirs, work, log);
            var optionSeconds = options.ToDictionary(o => o.Name, o =>
            {
                double seconds = o.Export(checkpoint, dirs[o.Name]);
                log.WriteLine($"bench: export {o.Name} ({o.Arguments}, in process, no check): {seconds:F1} s");
                return seconds;
            });
            Directory.Delete(checkpoint, true);
            var shapes = s.Quantize.Concat(options.Select(o => o.Name))
                .ToDictionary(n => n, n => MatMulNBitsShape.Read(Path.Combine(dirs[n], Core.Onnx.CausalLmContract.ModelFile)));

            long lookupBytes = (long)vocab * hidden * 4;
            var variants = names.Select(n => new BenchVariant(n, dirs[n], 0)).ToList();
            long arrayBytes = s.Quick ? s.BandwidthBytes : Math.Max(s.BandwidthBytes, DecodeBandwidthBench.LargeArrayBytes);
            int rounds = s.Quick ? s.Repeats : Math.Min(s.Repeats, MaxRounds);
            int[] batches = s.Quick ? [1, 2] : [1, 8];
            var before = MemoryProbe.ReadBandwidth(arrayBytes, passes: 3);
            var optionVariants = options.Select(o => new BenchVariant(o.Name, dirs[o.Name], 0)).ToList();
            var all = batches.SelectMany(b => GenerationBench.RunInterleaved(b == 1 ? [.. variants, .. optionVariants] : variants, b, s.PromptLength, s.NewTokens, before, rounds, TimeSpan.Zero)).ToList();
            var after = MemoryProbe.ReadBandwidth(arrayBytes, passes: 3);
            foreach (var o in options) Directory.Delete(dirs[o.Name], true);
            double bandwidth = Math.Max(before, after);
            var figures = all.Where(f => names.Contains(f.Variant)).ToList();
            var decode = figures.Select(f => DecodeJson(f, figures.First(g => g.Variant == "fp32" && g.Batch == f.Batch), f.Variant == "fp32" ? 0 : lookupBytes, bandwidth, log)).ToList();
            var fp32Batch1 = figures.First(f => f.Variant == "fp32" && f.Batch == 1);
            var int4Options = options.Select(o =>
            {
                var json = DecodeJson(all.First(f => f.Variant == o.Name), fp32Batch1, lookupBytes, bandwidth, log);
                return new Dictionary<string, object?>
                {
                    ["variant"] = o.Name, ["export_arguments"] = o.Arguments, ["block_size"] = o.Quantization.Format.BlockSize, ["head"] = o.HeadBits ?? "int8", ["attention"] = o.AttentionBits ?? "int8",
                    ["export_seconds"] = BenchRunner.R(optionSeconds[o.Name]),
                    ["paired_decode_over_fp32"] = json["paired_decode_over_fp32"], ["decode_tokens_per_second"] = json["decode_tokens_per_second"],
                    ["weight_bytes"] = json["weight_bytes"], ["bytes_per_token"] = json["bytes_per_token"],
                    ["bandwidth_limit_tokens_per_second"] = json["bandwidth_limit_tokens_per_second"], ["fraction_of_bandwidth_limit"] = json["fraction_of_bandwidth_limit"],
                };
            }).ToList();

            var genai = new List<Dictionary<string, object?>>();
            string? genAiNote = null;
            var baseline = s.GenAi ? GenAiBaseline.Prepare(!s.Quick, log, out genAiNote) : null;
            // the goal figure runs GenAI with its defaults; at batch 1 it also runs at our thread count (its default is half
            // the hardware threads: one here, where ours takes two), where its idle threads spin (GenAI's config cannot
            // turn that off; ours sleep)
            int threads = GenAiThreads.PhysicalCores();
            if (baseline != null)
                foreach (var f in figures)
                {
                    var variant = variants.First(v => v.Name == f.Variant);
                    var run = BenchRunner.GenAiRun(baseline, variant, f, s with { Repeats = rounds }, log);
                    if (f.Batch == 1 && run.ContainsKey("genai_tokens_per_second")) run["genai_at_our_threads"] = AtOurThreads(baseline, variant, f, s with { Repeats = rounds }, threads, log);
                    genai.Add(run);
                }

            var result = new Dictionary<string, object?>
            {
                ["config"] = label, ["hidden_size"] = hidden, ["layers"] = config["n_layer"]!.GetValue<int>(), ["vocab_size"] = vocab,
                ["checkpoint_bytes"] = bytes, ["widths"] = s.Quantize, ["rounds"] = rounds,
                ["read_gb_per_second"] = Math.Round(bandwidth / 1e9, 3),
                ["read_gb_per_second_before_after"] = new[] { Math.Round(before / 1e9, 3), Math.Round(after / 1e9, 3) },
                ["exports"] = exports,
                ["decode"] = decode,
                ["genai"] = baseline != null ? genai : new List<Dictionary<string, object?>>(),
                ["genai_note"] = s.GenAi ? genAiNote : "skipped (--no-genai or --skip genai)",
                ["note"] = Note,
            };
            if (options.Count > 0)
            {
                result["int4_options"] = int4Options;
                result["int4_options_note"] = Int4OptionsNote;
            }
            var judged = BenchGoals.Judge(System.Text.Json.JsonSerializer.SerializeToElement(new Dictionary<string, object?> { ["quantized"] = result }));
            var missed = judged.Where(g => g.Value is Dictionary<string, object?> d && d["met"] is false).Select(g => g.Key).ToList();
            result["goals_missed"] = missed;
            log.WriteLine("bench: profiling decode steps (every model at batch 1, fp32 at the largest batch)");
            var profiles = StepProfiles(names, dirs, batches.Max(), work, s.PromptLength);
            result["decode_step_profiles"] = profiles;
            var ceilingModels = shapes.Select(kv =>
            {
                // an option is held to the int4 goal and takes the default int4 export's time outside MatMulNBits
                string width = names.Contains(kv.Key) ? kv.Key : "int4";
                var (run, nbits) = CeilingModel.FromProfile(profiles.First(p => (string?)p["variant"] == width && (int?)p["batch"] == 1));
                double goal = judged.GetValueOrDefault($"quantized_{width}_decode_over_fp32") is Dictionary<string, object?> g ? (double)g["target"]! : double.NaN;
                double step = 1e6 / figures.First(f => f.Variant == width && f.Batch == 1).DecodeTokensPerSecond;
                return new CeilingModel(kv.Key, kv.Value, goal, step, run, nbits, width);
            }).Where(m => double.IsFinite(m.GoalRatio)).ToList();
            result["kernel_ceiling"] = KernelCeilingBench.Run(ceilingModels, 1e6 / fp32Batch1.DecodeTokensPerSecond, bandwidth,
                s.Quick ? KernelCeilingSizes.Quick() : KernelCeilingSizes.Full(), work, log);
            if (missed.Count > 0)
            {
                log.WriteLine($"bench: quantized goals missed ({string.Join(", ", missed)}): see each quantized model's profile");
                result["profiles"] = s.Quantize.ToDictionary(w => w, w => profiles.First(p => (string?)p["variant"] == w && (int?)p["batch"] == 1));
            }
            return result;
        }
        finally
        {
            foreach (var d in dirs.Values.Append(checkpoint))
                if (Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    /// <summary>
    /// Decode-step profiles (<see cref="DecodeStepProfile"/>) of every model at batch 1 and of fp32 at <paramref name="largestBatch"/>,
    /// each with the rate of its Concat nodes (a step copies the whole cache: present = Concat(past, new)).
    /// </summary>
    private static List<Dictionary<string, object?>> StepProfiles(List<string> names, Dictionary<string, string> dirs, int largestBatch, string work, int pastLength)
    {
        var runs = names.Select(n => (Name: n, Batch: 1)).Append((Name: "fp32", Batch: largestBatch)).Distinct();
        return runs.Select(r =>
        {
            var profile = DecodeStepProfile.Run(dirs[r.Name], work, pastLength, batch: r.Batch);
            profile["variant"] = r.Name;
            return profile;
        }).ToList();
    }

    /// <summary>GenAI's run on <paramref name="variant"/> with <paramref name="threads"/> intra-op threads (<see cref="GenAiThreads"/>).</summary>
    private static Dictionary<string, object?> AtOurThreads(GenAiBaseline baseline, BenchVariant variant, GenerationFigures f, BenchSettings s, int threads, TextWriter log)
    {
        var threaded = variant with { Dir = GenAiThreads.Folder(variant.Dir, threads) };
        try
        {
            var run = BenchRunner.GenAiRun(baseline, threaded, f, s, log);
            return new Dictionary<string, object?>
            {
                ["intra_op_threads"] = threads,
                ["genai_tokens_per_second"] = run.GetValueOrDefault("genai_tokens_per_second"),
                ["genai_cpu_seconds"] = run.GetValueOrDefault("genai_cpu_seconds"),
                ["ours_over_genai"] = run.GetValueOrDefault("ours_over_genai"),
                ["note"] = run.GetValueOrDefault("note"),
            };
        }
        finally
        {
            Directory.Delete(threaded.Dir, true);
        }
    }

    private const string Int4OptionsNote =
        "other int4 exports of the same checkpoint (export_arguments; in process, without the ORT check), decoded at batch 1 in the same interleaved rounds " +
        "as fp32 and the default exports (paired_decode_over_fp32 against fp32's same rounds; no GenAI run, no batch 8): what a smaller block, int4 attention or an int4 head " +
        "give at ONNX Runtime's MatMulNBits kernels on this processor (accuracy: README's quantized-export table)";

    private const string Note =
        "each export runs in a child process between two copies (+ fsync) of the checkpoint: export_over_copy divides its seconds by their mean; " +
        "peak_rss_over_fp32 compares its peak RSS with the float32 export's. decode: every model of one batch size in interleaved rounds (no warm-up " +
        "turn sizing); paired_decode_over_fp32 is the median over rounds of its decode tokens/s over fp32's in the same round (the goal figure at batch 1); " +
        "bytes_per_token = weight files (less the float lookup table of a quantized export, of which a step reads one row per token) + KV cache; " +
        "bandwidth_limit = batch x read bandwidth (the higher of the probes before and after the rounds) / bytes_per_token";

    private static List<Dictionary<string, object?>> Export(string checkpoint, List<string> names, Dictionary<string, string> dirs, string work, TextWriter log)
    {
        var copies = new List<double> { ExportBench.Copy(checkpoint, work, "quant") };
        var runs = new List<(string Name, ExportChildFigures Child)>();
        foreach (var n in names)
        {
            var args = new List<string> { "export", "--base", checkpoint, "--out", dirs[n], "--force", "--json" };
            if (n != "fp32") args.AddRange(["--quantize", n]);
            runs.Add((n, ExportBench.RunChild(n, [.. args])));
            copies.Add(ExportBench.Copy(checkpoint, work, "quant"));
            log.WriteLine($"bench: export {n}: {runs[^1].Child.Seconds:F1} s, peak RSS {runs[^1].Child.PeakRssBytes / 1048576.0:F0} MB (copies beside it {copies[^2]:F1} s, {copies[^1]:F1} s)");
        }
        long fp32Peak = runs[0].Child.PeakRssBytes;
        return runs.Select((r, i) =>
        {
            double copy = (copies[i] + copies[i + 1]) / 2;
            return new Dictionary<string, object?>
            {
                ["variant"] = r.Name,
                ["export_seconds"] = BenchRunner.R(r.Child.Seconds), ["export_wall_seconds"] = BenchRunner.R(r.Child.WallSeconds),
                ["export_cpu_seconds"] = BenchRunner.R(r.Child.CpuSeconds), ["copy_seconds"] = BenchRunner.R(copy),
                ["export_over_copy"] = Math.Round(r.Child.Seconds / copy, 3),
                ["peak_rss_bytes"] = r.Child.PeakRssBytes, ["peak_rss_mb"] = Math.Round(r.Child.PeakRssBytes / 1048576.0, 1),
                ["peak_rss_over_fp32"] = Math.Round(r.Child.PeakRssBytes / (double)fp32Peak, 3),
                ["weight_bytes"] = GenerationBench.WeightBytes(dirs[r.Name]),
                ["phases"] = r.Child.Phases,
            };
        }).ToList();
    }

    private static Dictionary<string, object?> DecodeJson(GenerationFigures f, GenerationFigures fp32, long lookupBytes, double bandwidth, TextWriter log)
    {
        long bytesPerToken = f.WeightBytes - lookupBytes + f.KvBytesPerStep;
        double limit = f.Batch * bandwidth / bytesPerToken;
        var paired = f.Rounds.Zip(fp32.Rounds, (v, b) => GenerationBench.DecodeTokensPerSecond(b, f.Batch) > 0
            ? GenerationBench.DecodeTokensPerSecond(v, f.Batch) / GenerationBench.DecodeTokensPerSecond(b, f.Batch) : double.NaN)
            .Where(double.IsFinite).ToList();
        double fraction = limit > 0 ? f.DecodeTokensPerSecond / limit : 0;
        log.WriteLine($"bench: {f.Variant} batch {f.Batch}: decode {f.DecodeTokensPerSecond:F2} tokens/s, {fraction:P0} of its bandwidth limit");
        return new Dictionary<string, object?>
        {
            ["variant"] = f.Variant, ["batch"] = f.Batch, ["prompt_length"] = f.PromptLength, ["new_tokens"] = f.NewTokens,
            ["tokens_per_second"] = BenchRunner.R(f.TokensPerSecond), ["decode_tokens_per_second"] = BenchRunner.R(f.DecodeTokensPerSecond),
            ["median_decode_tokens_per_second"] = BenchRunner.R(f.MedianDecodeTokensPerSecond), ["ttft_seconds"] = BenchRunner.R(f.TtftSeconds, 6),
            ["paired_decode_over_fp32"] = paired.Count > 0 ? Math.Round(Spread.Of(paired).Median, 4) : null,
            ["weight_bytes"] = f.WeightBytes, ["lookup_table_bytes_not_read"] = lookupBytes, ["kv_cache_bytes_per_step"] = f.KvBytesPerStep,
            ["bytes_per_token"] = bytesPerToken,
            ["bandwidth_limit_tokens_per_second"] = BenchRunner.R(limit), ["fraction_of_bandwidth_limit"] = Math.Round(fraction, 4),
            ["peak_rss_mb"] = Math.Round(f.PeakRssBytes / 1048576.0, 1),
        };
    }
}
