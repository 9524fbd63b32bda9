using System.Text.Json;

namespace Peft.Onnx.Bench;

/// <summary>
/// Issue 8's speed goals judged on one bench result: for each goal whose section ran, every figure it covers, the
/// worst of them, the target, and whether the worst meets it.
/// </summary>
public static class BenchGoals
{
    private sealed record Goal(string Name, string Description, string Comparison, double Target);

    private static readonly Goal DecodeBandwidth = new("decode_fraction_of_bandwidth_limit",
        "batch-1 fp32 decode tokens/s over the memory-bandwidth limit (decode_bandwidth models)", ">=", 0.9);
    private static readonly Goal GenAiBatch1 = new("ours_over_genai_batch_1", "tokens/s ours / ORT GenAI at batch 1, every variant and decode model", ">=", 1.0);
    private static readonly Goal GenAiBatch8 = new("ours_over_genai_batch_8", "tokens/s ours / ORT GenAI at batch 8, every variant", ">=", 1.2);
    private static readonly Goal Ttft = new("ttft_ours_over_genai", "time to first token ours / ORT GenAI, every run", "<=", 1.0);
    private static readonly Goal Merged = new("merged_paired_over_base",
        "lora_merged and ia3_merged: median over rounds of tokens/s over base's in the same round, every batch size (control_values: a second base session's, the noise floor)", ">=", 0.97);
    private static readonly Goal Prompt = new("prompt_prefix_paired_decode_over_base",
        "prompt_tuning and prefix: median over rounds of decode tokens/s over base's in the same round, every batch size (control_values: a second base session's)", ">=", 0.95);
    private static readonly Goal Export = new("export_over_copy",
        "export seconds over the copy of the same bytes beside it, the default float32 exports (base, base + merged LoRA) of the bloomz-560m-sized checkpoint " +
        "(bench --export-560m); the fp16 variant is reported, not judged: ONNX Runtime's CPU provider has no float16 MatMul on x86, so its check " +
        "casts every weight to float32 in each of its two runs", "<=", 2.0);

    private static readonly Goal Int8OverFp32 = new("quantized_int8_decode_over_fp32",
        "batch-1 decode tokens/s of the int8 export over the float32 export's (median over rounds of the same round's ratio), bench --quantize", ">=", 2.5);
    private static readonly Goal Int4OverFp32 = new("quantized_int4_decode_over_fp32",
        "batch-1 decode tokens/s of the int4 export (int8 head by default) over the float32 export's (median over rounds of the same round's ratio)", ">=", 4.0);
    private static readonly Goal QuantizedGenAi = new("quantized_ours_over_genai",
        "batch-1 tokens/s ours / ORT GenAI on the same quantized folder: the lower of int8 and int4", ">=", 1.0);
    private static readonly Goal Int8Bandwidth = new("quantized_int8_bandwidth_fraction",
        "batch-1 decode tokens/s of the int8 export over its bandwidth limit (read bandwidth / its own bytes per token)", ">=", 0.8);
    private static readonly Goal Int4Bandwidth = new("quantized_int4_bandwidth_fraction",
        "batch-1 decode tokens/s of the int4 export over its bandwidth limit (read bandwidth / its own bytes per token)", ">=", 0.8);
    private static readonly Goal QuantizedExport = new("quantized_export_over_copy",
        "seconds of each quantized export (ORT check included) over the copy of the checkpoint beside it, bench --quantize", "<=", 3.0);
    private static readonly Goal QuantizedExportRss = new("quantized_export_peak_rss_over_fp32",
        "peak RSS of each quantized export over the float32 export's of the same checkpoint, bench --quantize", "<=", 1.0);
    private static readonly Goal MixedOverBase = new("multi_adapter_mixed_over_base_b8",
        "batch 8, 8 rows with 8 different LoRA adapters through the multi-adapter graph: tokens/s over the base graph's at batch 8 (median over rounds of the same round's ratio)", ">=", 0.85);
    private static readonly Goal SingleOverMerged = new("multi_adapter_single_over_merged_b1",
        "batch 1, one adapter through the multi-adapter graph: tokens/s over that adapter's merged export (median over rounds of the same round's ratio)", ">=", 0.9);
    private static readonly Goal MultiOverGenAi = new("multi_adapter_over_genai",
        "the same 8 requests (one adapter each): ours as one mixed batch of 8, tokens/s over ORT GenAI's (one generator per adapter, Adapters API, .onnx_adapter files)", ">=", 2.0);

    public static Dictionary<string, object?> Judge(JsonElement result)
    {
        var goals = new Dictionary<string, object?>();
        void Add(Goal goal, List<(string At, double Value)> values)
        {
            values = values.Where(v => double.IsFinite(v.Value)).ToList();
            if (values.Count == 0) return;
            var worst = goal.Comparison == ">=" ? values.MinBy(v => v.Value) : values.MaxBy(v => v.Value);
            goals[goal.Name] = new Dictionary<string, object?>
            {
                ["measured"] = Math.Round(worst.Value, 4),
                ["target"] = goal.Target,
                ["comparison"] = goal.Comparison,
                ["met"] = goal.Comparison == ">=" ? worst.Value >= goal.Target : worst.Value <= goal.Target,
                ["worst_at"] = worst.At,
                ["values"] = values.DistinctBy(v => v.At).ToDictionary(v => v.At, v => Math.Round(v.Value, 4)),
                ["description"] = goal.Description,
            };
        }

        if (result.TryGetProperty("decode_bandwidth", out var decode))
            Add(DecodeBandwidth, decode.EnumerateArray().Select(m => (Text(m, "model"), Number(m, "fraction_of_bandwidth_limit"))).ToList());

        var genAiRuns = new List<(string At, int Batch, JsonElement Run)>();
        if (result.TryGetProperty("genai", out var genai) && genai.TryGetProperty("runs", out var runs))
            genAiRuns.AddRange(runs.EnumerateArray().Select(r => ($"{Text(r, "variant")} batch {r.GetProperty("batch").GetInt32()}", r.GetProperty("batch").GetInt32(), r)));
        if (decode.ValueKind == JsonValueKind.Array)
            foreach (var m in decode.EnumerateArray())
                if (m.TryGetProperty("genai", out var run) && run.TryGetProperty("batch", out var batch))
                    genAiRuns.Add(($"{Text(m, "model")} batch {batch.GetInt32()}", batch.GetInt32(), run));
        Add(GenAiBatch1, genAiRuns.Where(r => r.Batch == 1).Select(r => (r.At, Number(r.Run, "ours_over_genai"))).ToList());
        Add(GenAiBatch8, genAiRuns.Where(r => r.Batch == 8).Select(r => (r.At, Number(r.Run, "ours_over_genai"))).ToList());
        Add(Ttft, genAiRuns.Select(r => (r.At, Number(r.Run, "ours_ttft_over_genai"))).ToList());

        if (result.TryGetProperty("generation", out var generation))
        {
            List<(string, double)> Paired(string key, params string[] variants) => generation.EnumerateArray()
                .Where(g => variants.Contains(Text(g, "variant")))
                .Select(g => ($"{Text(g, "variant")} batch {g.GetProperty("batch").GetInt32()}", Number(g, key))).ToList();
            Add(Merged, Paired("paired_over_base", "lora_merged", "ia3_merged"));
            Add(Prompt, Paired("paired_decode_over_base", "prompt_tuning", "prefix"));
            // The same ratio of a second base session: how far noise alone moved it in this run.
            if (result.TryGetProperty("generation_control", out var controls))
                foreach (var (goal, key) in new[] { (Merged, "paired_over_base"), (Prompt, "paired_decode_over_base") })
                    if (goals.TryGetValue(goal.Name, out var entry) && entry is Dictionary<string, object?> judged)
                        judged["control_values"] = controls.EnumerateArray()
                            .Select(c => ($"batch {c.GetProperty("batch").GetInt32()}", Number(c, key))).Where(c => double.IsFinite(c.Item2))
                            .ToDictionary(c => c.Item1, c => Math.Round(c.Item2, 4));
        }

        if (result.TryGetProperty("quantized", out var quantized))
        {
            List<(string, double)> Decode(string variant, string key) => quantized.GetProperty("decode").EnumerateArray()
                .Where(d => Text(d, "variant") == variant && d.GetProperty("batch").GetInt32() == 1)
                .Select(d => ($"{variant} batch 1", Number(d, key))).ToList();
            Add(Int8OverFp32, Decode("int8", "paired_decode_over_fp32"));
            Add(Int4OverFp32, Decode("int4", "paired_decode_over_fp32"));
            if (quantized.TryGetProperty("genai", out var qGenAi))
                Add(QuantizedGenAi, qGenAi.EnumerateArray().Where(r => Text(r, "variant") is "int8" or "int4" && r.GetProperty("batch").GetInt32() == 1)
                    .Select(r => ($"{Text(r, "variant")} batch 1", Number(r, "ours_over_genai"))).ToList());
            if (quantized.TryGetProperty("exports", out var exports))
            {
                List<(string, double)> Exported(string key) => exports.EnumerateArray().Where(e => Text(e, "variant") != "fp32")
                    .Select(e => (Text(e, "variant"), Number(e, key))).ToList();
                Add(QuantizedExport, Exported("export_over_copy"));
                Add(QuantizedExportRss, Exported("peak_rss_over_fp32"));
            }
            Add(Int8Bandwidth, Decode("int8", "fraction_of_bandwidth_limit"));
            Add(Int4Bandwidth, Decode("int4", "fraction_of_bandwidth_limit"));
        }

        if (result.TryGetProperty("multi_adapter", out var multi))
        {
            (string, double) Figure(string key) => (key, multi.TryGetProperty("figures", out var f) ? Number(f, key) : double.NaN);
            Add(MixedOverBase, [Figure("mixed_over_base_b8")]);
            Add(SingleOverMerged, [Figure("single_over_merged_b1")]);
            Add(MultiOverGenAi, [Figure("over_genai")]);
        }

        // The goal is about a bloomz-560m-sized checkpoint (--export-560m); the smaller default sizes pay ONNX
        // Runtime's fixed check cost on a copy of a few MB, so their ratio says nothing about it.
        if (result.TryGetProperty("export", out var export) && Text(export, "config") == "bloomz-560m")
        {
            // The top-level figures are the fp32 export, one of the variants; older results have only those.
            var values = export.TryGetProperty("variants", out var variants)
                ? variants.EnumerateArray().Where(v => Text(v, "dtype") is "" or "fp32")
                    .Select(v => ($"{Text(export, "config")} {Text(v, "name")}", Number(v, "export_over_copy"))).ToList()
                : [($"{Text(export, "config")}", Number(export, "export_over_copy"))];
            Add(Export, values);
        }
        return goals;
    }

    /// <summary>One line per goal for the short table.</summary>
    public static IEnumerable<string> Lines(JsonElement goals) =>
        goals.EnumerateObject().Select(g =>
            $"goal {g.Name,-38} {g.Value.GetProperty("measured").GetDouble(),7:F3} {g.Value.GetProperty("comparison").GetString()} {g.Value.GetProperty("target").GetDouble():F2}: " +
            $"{(g.Value.GetProperty("met").GetBoolean() ? "met" : "NOT met")} (worst: {g.Value.GetProperty("worst_at").GetString()})" +
            (g.Value.TryGetProperty("control_values", out var control) && control.EnumerateObject().Any()
                ? $"; control base session: {string.Join(", ", control.EnumerateObject().Select(c => $"{c.Name} {c.Value.GetDouble():F3}"))}" : ""));

    private static string Text(JsonElement e, string key) => e.TryGetProperty(key, out var v) ? v.GetString() ?? "" : "";

    private static double Number(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
}
