using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.GenAiAdapters;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Bench;

/// <summary>
/// `bench --multi-adapter`: 8 random LoRA adapters (ranks 8 to 16 on every linear module) in one multi-adapter export,
/// timed in interleaved rounds against the base graph (a batch of 8 rows, each with its own adapter) and against one
/// adapter's merged export (batch 1, that adapter); the same 8 requests through ORT GenAI's Adapters API (an unmerged
/// export whose LoRA tensors are overridable inputs, one <c>.onnx_adapter</c> per adapter, one generator per request);
/// and disk bytes and RSS of multi-adapter exports of 1, 8 and 32 adapters against the base export plus the adapters'
/// own bytes. The goals are measured on a random checkpoint of bloomz-560m's real config (the one `bench --quantize`
/// writes; --quick: a small one), where the adapters' share of a step is what it is in a served model; the bench's own
/// --base (a tiny BLOOM, where fixed per-kernel costs weigh far more) gives the same two ratios as extra figures. A
/// missed goal brings per-operator profiles of the decode steps compared.
/// </summary>
public static class MultiAdapterBench
{
    public const int Adapters = 8;
    public static readonly int[] MemoryCounts = [1, 8, 32];

    /// <summary>Rounds and new tokens at the full size: a bloomz-560m float32 batch-8 decode step takes ~0.1 s on two cores.</summary>
    public const int MaxRounds = 3, MaxNewTokens = 16;

    /// <summary>The rank of adapter <paramref name="i"/> of <see cref="Adapters"/>: 8 to 16.</summary>
    public static int Rank(int i) => 8 + (i % Adapters) * 8 / (Adapters - 1);

    public static Dictionary<string, object?> Run(BenchSettings s, string work, TextWriter log)
    {
        var tinyConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(s.BaseDir, "config.json")))!.AsObject();
        if (ModelConfig.Load(s.BaseDir).ModelType != "bloom")
            throw new PeftOnnxException($"bench --multi-adapter: {s.BaseDir} is {ModelConfig.Load(s.BaseDir).ModelType}; the random LoRA adapters are written for BLOOM (give a BLOOM --base)");
        var real = BenchRunner.FindUp(Path.Combine("tests", "fixtures", "peft-doc-configs", "bloomz-560m", "config.json"))
            ?? throw new PeftOnnxException("bench: tests/fixtures/peft-doc-configs/bloomz-560m/config.json not found above the current folder");
        var config = s.Quick ? RandomCheckpoint.BloomConfig(real, 64, 2, 4, 1000) : RandomCheckpoint.BloomConfig(real);
        var label = s.Quick ? "bloom-mini" : "bloomz-560m";
        var root = Path.Combine(work, "multi");
        Directory.CreateDirectory(root);
        try
        {
            var checkpoint = Path.Combine(root, "ckpt");
            long checkpointBytes = RandomCheckpoint.WriteAny(checkpoint, config);
            log.WriteLine($"bench: wrote a random {label} checkpoint ({checkpointBytes / 1048576.0:F0} MB) for the multi-adapter goals");
            int rounds = s.Quick ? s.Repeats : Math.Min(s.Repeats, MaxRounds), tokens = s.Quick ? s.NewTokens : Math.Min(s.NewTokens, MaxNewTokens);
            var goal = Measure(s with { Repeats = rounds, NewTokens = tokens }, checkpoint, config, label, Path.Combine(root, "goal"), full: true, log);
            var tiny = Measure(s, s.BaseDir, tinyConfig, Path.GetFileName(s.BaseDir.TrimEnd('/')), Path.Combine(root, "tiny"), full: false, log);
            var figures = (Dictionary<string, object?>)goal["figures"]!;
            var tinyFigures = (Dictionary<string, object?>)tiny["figures"]!;
            figures["model"] = label;
            foreach (var key in new[] { "mixed_over_base_b8", "single_over_merged_b1" }) figures[$"{key}_on_{tiny["model"]}"] = tinyFigures[key];
            return new Dictionary<string, object?>
            {
                ["base"] = Path.GetFullPath(s.BaseDir),
                ["model"] = label,
                ["model_config"] = new Dictionary<string, object?>
                {
                    ["hidden_size"] = config["hidden_size"]!.GetValue<int>(), ["layers"] = config["n_layer"]!.GetValue<int>(),
                    ["vocab_size"] = config["vocab_size"]!.GetValue<int>(), ["checkpoint_bytes"] = checkpointBytes,
                },
                ["lora_layout"] = "rows",
                ["rounds"] = rounds,
                ["new_tokens"] = tokens,
                ["adapters"] = Adapters,
                ["ranks"] = Enumerable.Range(0, Adapters).Select(Rank).ToList(),
                ["figures"] = figures,
                ["batch_8"] = goal["batch_8"],
                ["batch_1"] = goal["batch_1"],
                ["genai"] = goal["genai"],
                ["memory"] = goal["memory"],
                ["profiles"] = goal.GetValueOrDefault("profiles"),
                ["tiny"] = tiny,
                ["note"] = $"figures, batch_8, batch_1, genai, memory and profiles are on {label} (random weights, its real dims); tiny: the same ratios on --base {tiny["model"]}. " +
                    "Ratios are medians over rounds of the same round's seconds (same tokens), base or merged over multi-adapter; " +
                    "over_genai compares our best round of the mixed batch of 8 with GenAI's best run of the same 8 requests (one generator each, sequential); " +
                    "memory: weight_bytes of a multi-adapter export against base_weight_bytes + the adapters' own safetensors bytes (the LoRA row layout stores a zero row per module and an index table per layout beyond them; the IA3/DoRA/lora_bias vectors, none here, keep a base slot), " +
                    "rss_increase = VmHWM over load + one generation minus RSS before the load",
            };
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// The two ratios on the BLOOM checkpoint <paramref name="checkpoint"/> (<paramref name="config"/> its config.json);
    /// <paramref name="full"/>: also ORT GenAI, memory, and the profiles when a goal misses.
    /// </summary>
    private static Dictionary<string, object?> Measure(BenchSettings s, string checkpoint, JsonObject config, string label, string root, bool full, TextWriter log)
    {
        Directory.CreateDirectory(root);
        int count = full ? MemoryCounts.Max() : Adapters;
        var adapterDirs = new List<string>();
        var adapterBytes = new List<long>();
        for (int i = 0; i < count; i++)
        {
            var dir = Path.Combine(root, $"adapter{i}");
            adapterBytes.Add(RandomCheckpoint.WriteBloomLora(dir, config, Rank(i), 2 * Rank(i), seed: 0x9E3779B9u + (uint)i * 7919u));
            adapterDirs.Add(dir);
        }
        var named = adapterDirs.Select((d, i) => new NamedAdapter($"a{i}", d)).ToList();
        var options = new ExportOptions { Overwrite = true };
        var baseDir = Path.Combine(root, "onnx-base");
        var multiDir = Path.Combine(root, "onnx-multi8");
        var mergedDir = Path.Combine(root, "onnx-merged-a0");
        OnnxExport.Export(checkpoint, null, baseDir, options);
        MultiAdapterExport.Export(checkpoint, named.Take(Adapters).ToList(), multiDir, options);
        OnnxExport.Export(checkpoint, adapterDirs[0], mergedDir, options);
        log.WriteLine($"bench: {label}: exported the base, {Adapters} adapters in one multi-adapter folder and adapter a0 merged");

        var names = named.Take(Adapters).Select(n => (string?)n.Name).ToList();
        var minTurn = s.Quick || full ? TimeSpan.Zero : GenerationBench.MinTurn;
        var bandwidth = MemoryProbe.ReadBandwidth(s.BandwidthBytes, passes: 3);
        var b8 = GenerationBench.RunInterleaved([new BenchVariant("base", baseDir, 0), new BenchVariant("multi_mixed", multiDir, 0) { RowAdapters = names }],
            Adapters, s.PromptLength, s.NewTokens, bandwidth, s.Repeats, minTurn);
        var b1 = GenerationBench.RunInterleaved([new BenchVariant("merged_a0", mergedDir, 0), new BenchVariant("multi_a0", multiDir, 0) { RowAdapters = ["a0"] }],
            1, s.PromptLength, s.NewTokens, bandwidth, s.Repeats, minTurn);
        double mixedOverBase = PairedOver(b8[1], b8[0]), singleOverMerged = PairedOver(b1[1], b1[0]);
        log.WriteLine($"bench: {label}: multi-adapter mixed batch 8 {b8[1].TokensPerSecond:F1} tokens/s (x{mixedOverBase:F3} of base), a0 at batch 1 x{singleOverMerged:F3} of its merged export");
        var figures = new Dictionary<string, object?>
        {
            ["mixed_over_base_b8"] = Math.Round(mixedOverBase, 4),
            ["single_over_merged_b1"] = Math.Round(singleOverMerged, 4),
        };
        var result = new Dictionary<string, object?>
        {
            ["model"] = label, ["hidden_size"] = config["hidden_size"]!.GetValue<int>(), ["rounds"] = s.Repeats, ["new_tokens"] = s.NewTokens,
            ["figures"] = figures, ["batch_8"] = b8.Select(Timing).ToList(), ["batch_1"] = b1.Select(Timing).ToList(),
        };
        if (!full) return result;

        var genai = s.GenAi ? GenAi(s, named.Take(Adapters).ToList(), b8[1], checkpoint, root, log) : new Dictionary<string, object?> { ["note"] = "skipped (--no-genai or --skip genai)" };
        figures["over_genai"] = genai.TryGetValue("ours_over_genai", out var o) ? o : null;
        result["genai"] = genai;
        if (mixedOverBase < 0.85 || singleOverMerged < 0.9)
            result["profiles"] = new Dictionary<string, object?>
            {
                ["base_b8"] = DecodeStepProfile.Run(baseDir, root, s.PromptLength, 4, batch: Adapters),
                ["multi_mixed_b8"] = DecodeStepProfile.Run(multiDir, root, s.PromptLength, 4, batch: Adapters, adapterIndex: Enumerable.Range(0, Adapters).Select(i => (long)i).ToArray()),
                ["merged_a0_b1"] = DecodeStepProfile.Run(mergedDir, root, s.PromptLength, 4),
                ["multi_a0_b1"] = DecodeStepProfile.Run(multiDir, root, s.PromptLength, 4, adapterIndex: [0]),
            };
        Directory.Delete(mergedDir, true);
        result["memory"] = MemoryCounts.Select(n => Memory(s, checkpoint, named.Take(n).ToList(), adapterBytes.Take(n).Sum(), baseDir, n == Adapters ? multiDir : null, root, log)).ToList();
        return result;
    }

    /// <summary>Median over rounds of <paramref name="reference"/>'s seconds over <paramref name="variant"/>'s (its tokens/s over the reference's).</summary>
    public static double PairedOver(GenerationFigures variant, GenerationFigures reference) =>
        Spread.Of(variant.Rounds.Zip(reference.Rounds, (v, r) => r.Seconds / v.Seconds)).Median;

    private static Dictionary<string, object?> Timing(GenerationFigures f) => new()
    {
        ["variant"] = f.Variant, ["batch"] = f.Batch, ["tokens_per_second"] = BenchRunner.R(f.TokensPerSecond),
        ["median_tokens_per_second"] = BenchRunner.R(f.MedianTokensPerSecond), ["decode_tokens_per_second"] = BenchRunner.R(f.DecodeTokensPerSecond),
        ["ttft_seconds"] = BenchRunner.R(f.TtftSeconds, 6), ["weight_bytes"] = f.WeightBytes, ["rounds"] = f.Rounds.Count,
    };

    /// <summary>
    /// ORT GenAI serving the same requests: an unmerged export of a rank-16 carrier adapter whose LoRA tensors are made
    /// overridable inputs, and each adapter written as an .onnx_adapter padded to rank 16 (zeros: the same products).
    /// </summary>
    private static Dictionary<string, object?> GenAi(BenchSettings s, List<NamedAdapter> adapters, GenerationFigures ours, string checkpoint, string root, TextWriter log)
    {
        var baseline = GenAiBaseline.Prepare(!s.Quick, log, out var note);
        if (baseline == null) return new Dictionary<string, object?> { ["note"] = note };
        int graphRank = Enumerable.Range(0, Adapters).Max(Rank);
        var files = WriteGenAiFolder(checkpoint, adapters.Select(a => a.Dir).ToList(), graphRank, Path.Combine(root, "genai"), out var folder);
        var run = baseline.RunAdapters(folder, s.PromptLength, s.NewTokens, s.Repeats, files, out var runNote);
        var result = new Dictionary<string, object?>
        {
            ["folder_rank"] = graphRank,
            ["adapter_file_bytes"] = files.Sum(f => new FileInfo(f).Length),
            ["ours_tokens_per_second"] = BenchRunner.R(ours.TokensPerSecond),
            ["threads_note"] = BenchRunner.GenAiThreadsNote,
        };
        if (run is { } j)
        {
            double tps = j.GetProperty("tokens_per_second").GetDouble();
            result["genai_tokens_per_second"] = tps;
            result["genai_cpu_seconds"] = j.GetProperty("cpu_seconds").GetDouble();
            result["ours_over_genai"] = tps > 0 ? Math.Round(ours.TokensPerSecond / tps, 4) : null;
            log.WriteLine($"bench: genai {adapters.Count} adapter requests: {tps:F1} tokens/s");
        }
        else result["note"] = runNote;
        Directory.Delete(folder, true);
        return result;
    }

    /// <summary>
    /// The folder ORT GenAI serves LoRA adapters from (an unmerged export of a rank-<paramref name="graphRank"/> carrier
    /// adapter on every BLOOM linear module, its LoRA tensors overridable inputs) and one .onnx_adapter per adapter in
    /// it; returns the files.
    /// </summary>
    public static List<string> WriteGenAiFolder(string baseDir, IReadOnlyList<string> adapterDirs, int graphRank, string outDir, out string folder)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(baseDir, "config.json")))!.AsObject();
        var carrier = outDir + "-carrier";
        // B zero: modules an adapter does not target keep adding nothing; alpha = r: the graph's scaling is 1
        RandomCheckpoint.WriteBloomLora(carrier, config, graphRank, graphRank, zeroB: true);
        folder = outDir;
        OnnxExport.Export(baseDir, carrier, folder, new ExportOptions { Merge = false, Overwrite = true });
        Directory.Delete(carrier, true);
        LoraGraphInputs.MakeOverridable(folder);
        var files = new List<string>();
        for (int i = 0; i < adapterDirs.Count; i++)
        {
            var file = Path.Combine(folder, $"adapter{i}{OnnxAdapterFile.Extension}");
            OnnxAdapterFile.Write(file, LoraOnnxAdapter.Parameters(baseDir, adapterDirs[i], graphRank));
            files.Add(file);
        }
        return files;
    }

    /// <param name="exported">A multi-adapter export of exactly <paramref name="adapters"/> already written (kept), or null: export one here (deleted after).</param>
    private static Dictionary<string, object?> Memory(BenchSettings s, string checkpoint, List<NamedAdapter> adapters, long adaptersBytes, string baseDir, string? exported, string root, TextWriter log)
    {
        var dir = exported ?? Path.Combine(root, $"onnx-memory-{adapters.Count}");
        if (exported == null) MultiAdapterExport.Export(checkpoint, adapters, dir, new ExportOptions { Overwrite = true });
        long weights = GenerationBench.WeightBytes(dir), baseWeights = GenerationBench.WeightBytes(baseDir);
        long disk = Directory.EnumerateFiles(dir).Sum(f => new FileInfo(f).Length);
        long rss = RssIncrease(dir, adapters[^1].Name, s), baseRss = RssIncrease(baseDir, null, s);
        if (exported == null) Directory.Delete(dir, true);
        log.WriteLine($"bench: {adapters.Count} adapters: {weights / 1048576.0:F1} MB of weights (base {baseWeights / 1048576.0:F1} MB + adapters {adaptersBytes / 1048576.0:F1} MB), RSS +{rss / 1048576.0:F0} MB (base +{baseRss / 1048576.0:F0} MB)");
        return new Dictionary<string, object?>
        {
            ["adapters"] = adapters.Count,
            ["disk_bytes"] = disk, ["weight_bytes"] = weights, ["base_weight_bytes"] = baseWeights, ["adapters_own_bytes"] = adaptersBytes,
            ["weight_bytes_over_goal"] = Math.Round(weights / (double)(baseWeights + adaptersBytes), 4),
            ["bytes_beyond_goal"] = weights - baseWeights - adaptersBytes,
            ["rss_increase_bytes"] = rss, ["base_rss_increase_bytes"] = baseRss,
            ["rss_increase_mb"] = Math.Round(rss / 1048576.0, 1), ["base_rss_increase_mb"] = Math.Round(baseRss / 1048576.0, 1),
            ["rss_increase_over_goal"] = baseRss > 0 ? Math.Round(rss / (double)(baseRss + adaptersBytes), 4) : null,
        };
    }

    /// <summary>VmHWM over loading <paramref name="dir"/> and one short generation (with <paramref name="adapter"/>) minus RSS before the load.</summary>
    private static long RssIncrease(string dir, string? adapter, BenchSettings s)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        MemoryProbe.ResetPeak();
        long before = MemoryProbe.CurrentRss();
        using (var model = OnnxModel.Load(dir, DeviceOptions.Cpu with { Report = null }))
        {
            var prompt = GenerationBench.Prompts(1, s.PromptLength, model.VocabSize)[0];
            var request = GenerationRequest.FromIds([prompt], new GenerationOptions { MaxNewTokens = s.NewTokens, DoSample = false, StopTokenIds = [] }) with { Adapter = adapter };
            using var g = model.CreateGenerator(request);
            while (!g.IsDone) g.GenerateNextToken();
        }
        return Math.Max(0, MemoryProbe.PeakRss() - before);
    }
}
