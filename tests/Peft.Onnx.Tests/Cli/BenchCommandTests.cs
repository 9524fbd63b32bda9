using System.Text.Json;
using Peft.Onnx.Bench;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>`bench --quick`: one JSON object holding every figure bench reports (timings themselves are not checked).</summary>
public class BenchCommandTests
{
    [Fact]
    public void Quick_bench_prints_one_json_object_with_every_section()
    {
        var r = CliRunner.Run("bench", "--quick", "--json", "--base", Path.Combine(Paths.Models, "tiny-bloom-fin"), "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Single(r.Stdout.Trim().Split('\n'));
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(JsonValueKind.Object, json.ValueKind);

        Assert.True(json.GetProperty("bandwidth").GetProperty("read_bytes_per_second").GetDouble() > 0);
        var generation = json.GetProperty("generation").EnumerateArray().ToList();
        var variants = generation.Select(g => g.GetProperty("variant").GetString()).Distinct().ToList();
        Assert.Equal(["base", "lora_merged", "lora_unmerged", "ia3_merged", "prompt_tuning", "prefix"], variants);
        foreach (var g in generation)
        {
            foreach (var key in new[] { "tokens_per_second", "decode_tokens_per_second", "ttft_seconds", "peak_rss_bytes", "weight_bytes",
                         "kv_cache_bytes_per_step", "bandwidth_limit_tokens_per_second", "fraction_of_bandwidth_limit", "tokens_per_second_over_base" })
                Assert.True(g.TryGetProperty(key, out _), $"generation entry lacks {key}");
            Assert.True(g.GetProperty("tokens_per_second").GetDouble() > 0);
        }
        Assert.Equal([1, 2], generation.Select(g => g.GetProperty("batch").GetInt32()).Distinct());
        AssertRoundsConsistent(generation);
        // The control (a second session of the base graph) ran in the same rounds; its ratios are judged against base's rounds too.
        var control = json.GetProperty("generation_control").EnumerateArray().ToList();
        Assert.Equal([1, 2], control.Select(c => c.GetProperty("batch").GetInt32()));
        Assert.All(control, c => Assert.Equal("base_control", c.GetProperty("variant").GetString()));
        AssertRoundsConsistent([.. generation.Where(g => g.GetProperty("variant").GetString() == "base"), .. control]);

        var genai = json.GetProperty("genai");
        Assert.True(genai.TryGetProperty("available", out _));
        Assert.True(genai.TryGetProperty("runs", out _));
        if (!genai.GetProperty("available").GetBoolean()) Assert.False(string.IsNullOrEmpty(genai.GetProperty("note").GetString()));

        var export = json.GetProperty("export");
        foreach (var key in new[] { "export_seconds", "export_peak_rss_bytes", "copy_seconds", "export_over_copy", "checkpoint_bytes" })
            Assert.True(export.TryGetProperty(key, out _), $"export lacks {key}");
        Assert.True(export.GetProperty("export_peak_rss_bytes").GetInt64() > 0);

        // Goals of the sections that ran (no decode_bandwidth: --decode-models not given), each judged on its worst value.
        var goals = json.GetProperty("goals");
        Assert.False(goals.TryGetProperty("decode_fraction_of_bandwidth_limit", out _));
        // The export goal is about the bloomz-560m size only; --quick exports a small one.
        Assert.False(goals.TryGetProperty("export_over_copy", out _));
        foreach (var name in new[] { "merged_paired_over_base", "prompt_prefix_paired_decode_over_base" })
        {
            var goal = goals.GetProperty(name);
            var values = goal.GetProperty("values").EnumerateObject().Select(v => v.Value.GetDouble()).ToList();
            var measured = goal.GetProperty("measured").GetDouble();
            bool higherIsBetter = goal.GetProperty("comparison").GetString() == ">=";
            Assert.Equal(higherIsBetter ? values.Min() : values.Max(), measured);
            Assert.Equal(higherIsBetter ? measured >= goal.GetProperty("target").GetDouble() : measured <= goal.GetProperty("target").GetDouble(),
                goal.GetProperty("met").GetBoolean());
        }
        Assert.Equal(["ia3_merged batch 1", "ia3_merged batch 2", "lora_merged batch 1", "lora_merged batch 2"],
            goals.GetProperty("merged_paired_over_base").GetProperty("values").EnumerateObject().Select(v => v.Name).Order());
        Assert.Equal(0.97, goals.GetProperty("merged_paired_over_base").GetProperty("target").GetDouble());
        Assert.Equal(["batch 1", "batch 2"], goals.GetProperty("merged_paired_over_base").GetProperty("control_values").EnumerateObject().Select(v => v.Name));

        var trainer = json.GetProperty("trainer");
        Assert.True(trainer.GetProperty("base_forward_backward").GetProperty("step_seconds").GetDouble() > 0);
        var methods = trainer.GetProperty("methods").EnumerateArray().Select(m => m.GetProperty("method").GetString()).ToList();
        Assert.Equal(["lora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning"], methods);
        foreach (var m in trainer.GetProperty("methods").EnumerateArray())
            Assert.True(m.GetProperty("samples_per_second").GetDouble() > 0);
    }

    [Fact]
    public void Quick_bench_with_quantize_and_multi_adapter_reports_both_sections_and_their_goals()
    {
        var r = CliRunner.Run("bench", "--quick", "--json", "--no-genai", "--skip", "generation,export,trainer", "--quantize", "int4", "--multi-adapter",
            "--base", Path.Combine(Paths.Models, "tiny-bloom-fin"), "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.False(json.TryGetProperty("generation", out _));

        var q = json.GetProperty("quantized");
        var exports = q.GetProperty("exports").EnumerateArray().ToList();
        Assert.Equal(["fp32", "int4"], exports.Select(e => e.GetProperty("variant").GetString()));
        Assert.Equal(1.0, exports[0].GetProperty("peak_rss_over_fp32").GetDouble());
        Assert.All(exports, e => Assert.True(e.GetProperty("export_over_copy").GetDouble() > 0));
        Assert.True(exports[1].GetProperty("weight_bytes").GetInt64() < exports[0].GetProperty("weight_bytes").GetInt64());
        var decode = q.GetProperty("decode").EnumerateArray().ToList();
        Assert.Equal(["fp32 1", "int4 1", "fp32 2", "int4 2"], decode.Select(d => $"{d.GetProperty("variant").GetString()} {d.GetProperty("batch").GetInt32()}"));
        foreach (var d in decode)
        {
            // bytes per token: the weight files, less the float lookup table of the quantized export (1000 x 64 float32), plus the KV cache
            long lookup = d.GetProperty("variant").GetString() == "int4" ? 1000L * 64 * 4 : 0;
            Assert.Equal(lookup, d.GetProperty("lookup_table_bytes_not_read").GetInt64());
            Assert.Equal(d.GetProperty("weight_bytes").GetInt64() - lookup + d.GetProperty("kv_cache_bytes_per_step").GetInt64(), d.GetProperty("bytes_per_token").GetInt64());
            Assert.True(d.GetProperty("fraction_of_bandwidth_limit").GetDouble() > 0);
        }
        var goals = json.GetProperty("goals");
        Assert.Equal(decode[1].GetProperty("paired_decode_over_fp32").GetDouble(), goals.GetProperty("quantized_int4_decode_over_fp32").GetProperty("measured").GetDouble());
        Assert.Equal(decode[1].GetProperty("fraction_of_bandwidth_limit").GetDouble(), goals.GetProperty("quantized_int4_bandwidth_fraction").GetProperty("measured").GetDouble());
        foreach (var absent in new[] { "quantized_int8_decode_over_fp32", "quantized_ours_over_genai", "multi_adapter_over_genai" })
            Assert.False(goals.TryGetProperty(absent, out _), absent);
        // a missed goal brings the profile of each quantized model
        var missed = q.GetProperty("goals_missed").EnumerateArray().Select(m => m.GetString()).ToList();
        Assert.Equal(missed.Count > 0, q.TryGetProperty("profiles", out var profiles));
        if (missed.Count > 0) Assert.Contains(profiles.GetProperty("int4").GetProperty("operators").EnumerateArray(), o => o.GetProperty("op").GetString() == "MatMulNBits");
        // every model profiled at batch 1 and fp32 at the largest batch (2 with --quick), each in a warm second generation
        var stepProfiles = q.GetProperty("decode_step_profiles").EnumerateArray()
            .Select(p => (p.GetProperty("variant").GetString(), p.GetProperty("batch").GetInt32(), p.GetProperty("warm_up").GetBoolean())).ToList();
        Assert.Equal([("fp32", 1, true), ("int4", 1, true), ("fp32", 2, true)], stepProfiles);

        // the int4 options: decoded at batch 1 beside fp32 (paired), none of them in decode or the goals
        var options = q.GetProperty("int4_options").EnumerateArray().ToList();
        Assert.Equal(["int4-b32", "int4-attention4", "int4-head4", "int4-all4"], options.Select(o => o.GetProperty("variant").GetString()));
        Assert.Equal("--quantize int4 --attention-quantize int4 --head-quantize int4", options[3].GetProperty("export_arguments").GetString());
        Assert.Equal([32, 128, 128, 128], options.Select(o => o.GetProperty("block_size").GetInt32()));
        Assert.All(options, o => Assert.True(o.GetProperty("paired_decode_over_fp32").GetDouble() > 0));
        Assert.All(options, o => Assert.True(o.GetProperty("fraction_of_bandwidth_limit").GetDouble() > 0));
        // int4 attention or head means fewer bytes than the default's int8 ones, both fewest; blocks of 32 are smaller still on
        // bloom-mini, whose inputs (64) pad to a whole block of 128 (twice the codes)
        var optionBytes = options.Select(o => o.GetProperty("weight_bytes").GetInt64()).ToList();
        long defaultBytes = exports[1].GetProperty("weight_bytes").GetInt64();
        Assert.True(defaultBytes > optionBytes[1] && defaultBytes > optionBytes[2] && optionBytes[1] > optionBytes[3] && optionBytes[2] > optionBytes[3], string.Join(", ", optionBytes));
        Assert.True(defaultBytes > optionBytes[0]);
        Assert.All(options, o => Assert.Equal(o.GetProperty("weight_bytes").GetInt64() - 1000L * 64 * 4 + decode[1].GetProperty("kv_cache_bytes_per_step").GetInt64(),
            o.GetProperty("bytes_per_token").GetInt64()));

        // the kernel ceiling: every distinct MatMulNBits setting of the five int4 exports timed, every model judged
        var ceiling = q.GetProperty("kernel_ceiling");
        var settings = ceiling.GetProperty("settings").EnumerateArray().ToList();
        var defaultInt4 = settings.Where(k => k.GetProperty("in_models").EnumerateArray().Any(m => m.GetString() == "int4"))
            .Select(k => $"{k.GetProperty("bits").GetInt32()}/{k.GetProperty("block_size").GetInt32()}/{k.GetProperty("accuracy_level").GetInt32()} {k.GetProperty("k").GetInt64()}x{k.GetProperty("n").GetInt64()}").ToList();
        // bloom-mini: hidden 64, fused qkv 64 -> 192 and dense at int8, the 4h MLP at int4, the head (vocab 1000) at int8, one block
        Assert.Equal(["8/128/4 64x192", "8/128/4 64x64", "4/128/4 64x256", "4/128/4 256x64", "8/128/4 64x1000"], defaultInt4);
        Assert.Equal(settings.Count, settings.Select(k => k.GetProperty("in_models").GetRawText() + k.GetProperty("bits") + k.GetProperty("block_size") + k.GetProperty("k") + k.GetProperty("n")).Distinct().Count());
        foreach (var k in settings)
            foreach (var regime in new[] { "resident", "streamed" })
            {
                var rate = k.GetProperty(regime);
                Assert.True(rate.GetProperty("weights_per_second").GetDouble() > 0, regime);
                Assert.True(rate.GetProperty("best_weights_per_second").GetDouble() >= rate.GetProperty("weights_per_second").GetDouble() * 0.999, regime);
                Assert.InRange(rate.GetProperty("n_measured").GetInt64(), 1, k.GetProperty("n").GetInt64());
            }
        var fp32Step = 1e6 / decode[0].GetProperty("decode_tokens_per_second").GetDouble();
        Assert.Equal(fp32Step, ceiling.GetProperty("fp32_step_microseconds").GetDouble(), 0.051);
        var models = ceiling.GetProperty("models").EnumerateArray().ToList();
        Assert.Equal(["int4", "int4-b32", "int4-attention4", "int4-head4", "int4-all4"], models.Select(m => m.GetProperty("variant").GetString()));
        // 2 layers x 4 linear layers + the head
        Assert.Equal(9, models[0].GetProperty("matmulnbits_nodes").GetInt32());
        Assert.Equal(2L * (64 * 192 + 64 * 64 + 64 * 256 + 256 * 64) + 64 * 1000, models[0].GetProperty("matmulnbits_weights_per_step").GetInt64());
        foreach (var judged in models)
        {
            Assert.Equal(4.0, judged.GetProperty("goal_over_fp32").GetDouble());
            Assert.Equal("int4", judged.GetProperty("rest_from").GetString());
            Assert.Equal(Math.Round(fp32Step / 4, 1), judged.GetProperty("needed_step_microseconds").GetDouble(), 0.051);
            double step = judged.GetProperty("step_at_resident_rate_microseconds").GetDouble();
            Assert.Equal(judged.GetProperty("floor_resident_microseconds").GetDouble() + judged.GetProperty("rest_microseconds").GetDouble(), step, 0.11);
            Assert.Equal(step <= judged.GetProperty("needed_step_microseconds").GetDouble(), judged.GetProperty("reachable_by_kernels").GetBoolean());
        }

        var m = json.GetProperty("multi_adapter");
        Assert.Equal([8, 9, 10, 11, 12, 13, 14, 16], m.GetProperty("ranks").EnumerateArray().Select(x => x.GetInt32()));
        // the goals on the small random checkpoint of bloomz-560m's config (--quick), the --base's ratios beside them
        Assert.Equal("bloom-mini", m.GetProperty("model").GetString());
        Assert.Equal(64, m.GetProperty("model_config").GetProperty("hidden_size").GetInt32());
        var tiny = m.GetProperty("tiny");
        Assert.Equal("tiny-bloom-fin", tiny.GetProperty("model").GetString());
        Assert.Equal(["base 8", "multi_mixed 8"], tiny.GetProperty("batch_8").EnumerateArray().Select(t => $"{t.GetProperty("variant").GetString()} {t.GetProperty("batch").GetInt32()}"));
        foreach (var key in new[] { "mixed_over_base_b8", "single_over_merged_b1" })
            Assert.Equal(tiny.GetProperty("figures").GetProperty(key).GetDouble(), m.GetProperty("figures").GetProperty($"{key}_on_tiny-bloom-fin").GetDouble());
        Assert.Equal(m.GetProperty("figures").GetProperty("mixed_over_base_b8").GetDouble(), goals.GetProperty("multi_adapter_mixed_over_base_b8").GetProperty("measured").GetDouble());
        Assert.Equal(m.GetProperty("figures").GetProperty("single_over_merged_b1").GetDouble(), goals.GetProperty("multi_adapter_single_over_merged_b1").GetProperty("measured").GetDouble());
        Assert.Equal(["base 8", "multi_mixed 8"], m.GetProperty("batch_8").EnumerateArray().Select(t => $"{t.GetProperty("variant").GetString()} {t.GetProperty("batch").GetInt32()}"));
        var memory = m.GetProperty("memory").EnumerateArray().ToList();
        Assert.Equal([1, 8, 32], memory.Select(x => x.GetProperty("adapters").GetInt32()));
        for (int i = 0; i < memory.Count; i++)
        {
            Assert.True(memory[i].GetProperty("weight_bytes").GetInt64() > memory[i].GetProperty("base_weight_bytes").GetInt64());
            Assert.Equal(memory[i].GetProperty("weight_bytes").GetInt64() - memory[i].GetProperty("base_weight_bytes").GetInt64() - memory[i].GetProperty("adapters_own_bytes").GetInt64(),
                memory[i].GetProperty("bytes_beyond_goal").GetInt64());
            if (i > 0) Assert.True(memory[i].GetProperty("adapters_own_bytes").GetInt64() > memory[i - 1].GetProperty("adapters_own_bytes").GetInt64());
        }
        // the row layout stores no base slot and no rank padding: 32 adapters of ranks 8 to 16 cost their own bytes (padded
        // to rank 16 with a zero slot, the adapters' part would be a third larger)
        Assert.InRange(memory[2].GetProperty("weight_bytes_over_goal").GetDouble(), 0.98, 1.01);

        var table = new StringWriter();
        QuantizedTable.Print(q, table);
        MultiAdapterTable.Print(m, table);
        Assert.Contains("decode int4  batch 1:", table.ToString());
        Assert.Contains("option int4-head4      (--quantize int4 --head-quantize int4): x", table.ToString());
        Assert.Contains("kernel 8-bit block 128 level 4 64x192   : resident", table.ToString());
        Assert.Contains("ceiling int4           : MatMulNBits floor", table.ToString());
        Assert.Contains("32 adapters:", table.ToString());
        Assert.Contains(") on bloom-mini:", table.ToString());
        Assert.Contains("on tiny-bloom-fin (not a goal): mixed batch 8 x", table.ToString());
    }

    /// <summary>Interleaved rounds: best, median and worst agree with the rounds listed, and paired ratios with base's rounds.</summary>
    private static void AssertRoundsConsistent(List<JsonElement> generation)
    {
        foreach (var g in generation)
        {
            var label = $"{g.GetProperty("variant").GetString()} batch {g.GetProperty("batch").GetInt32()}";
            int rounds = g.GetProperty("rounds").GetInt32();
            Assert.Equal(3, rounds); // --quick's default
            var seconds = g.GetProperty("round_seconds").EnumerateArray().Select(e => e.GetDouble()).ToList();
            var ttfts = g.GetProperty("round_ttft_seconds").EnumerateArray().Select(e => e.GetDouble()).ToList();
            Assert.Equal(rounds, seconds.Count);
            Assert.Equal(rounds, ttfts.Count);
            // seconds are rounded to 0.1 ms, round_seconds to 1 us
            Assert.True(Math.Abs(seconds.Min() - g.GetProperty("seconds").GetDouble()) <= 1.01e-4, label);
            Assert.True(Math.Abs(seconds.Order().ElementAt(1) - g.GetProperty("median_seconds").GetDouble()) <= 1.01e-4, label);
            double best = g.GetProperty("tokens_per_second").GetDouble(), median = g.GetProperty("median_tokens_per_second").GetDouble();
            double worst = g.GetProperty("min_tokens_per_second").GetDouble();
            Assert.True(worst <= median && median <= best, $"{label}: min {worst} <= median {median} <= best {best}");
            double medianTtft = g.GetProperty("median_ttft_seconds").GetDouble();
            Assert.True(ttfts.Min() <= medianTtft && medianTtft <= ttfts.Max(), label);
            Assert.True(g.GetProperty("median_decode_tokens_per_second").GetDouble() > 0, label);
            Assert.True(g.GetProperty("peak_rss_bytes").GetInt64() >= g.GetProperty("rss_increase_bytes").GetInt64(), label);
            Assert.True(g.GetProperty("process_peak_rss_bytes").GetInt64() > 0, label);

            var baseRounds = generation.Single(b => b.GetProperty("variant").GetString() == "base" && b.GetProperty("batch").GetInt32() == g.GetProperty("batch").GetInt32())
                .GetProperty("round_seconds").EnumerateArray().Select(e => e.GetDouble()).ToList();
            var ratios = baseRounds.Zip(seconds, (b, v) => b / v).Order().ToList();
            double paired = g.GetProperty("paired_over_base").GetDouble();
            Assert.True(Math.Abs(ratios[1] - paired) <= 1e-3 * paired, $"{label}: paired {paired} vs rounds' {ratios[1]}");
            Assert.Equal(rounds, g.GetProperty("round_cpu_seconds").GetArrayLength());
            foreach (var key in new[] { "paired_over_base_spread", "paired_decode_over_base_spread", "paired_cpu_over_base_spread" })
            {
                var spread = g.GetProperty(key);
                var order = new[] { "min", "q1", "median", "q3", "max" }.Select(k => spread.GetProperty(k).GetDouble()).ToList();
                Assert.Equal(order.Order(), order);
            }
            Assert.Equal(paired, g.GetProperty("paired_over_base_spread").GetProperty("median").GetDouble());
            Assert.True(Math.Abs(ratios[0] - g.GetProperty("paired_over_base_spread").GetProperty("min").GetDouble()) <= 1e-3 * ratios[0], label);
            if (g.GetProperty("variant").GetString() == "base")
            {
                Assert.Equal(1.0, paired);
                Assert.Equal(1.0, g.GetProperty("paired_decode_over_base").GetDouble());
                Assert.Equal(1.0, g.GetProperty("paired_cpu_over_base").GetDouble());
                Assert.Equal(1.0, g.GetProperty("paired_over_base_spread").GetProperty("min").GetDouble());
                Assert.Equal(1.0, g.GetProperty("paired_over_base_spread").GetProperty("max").GetDouble());
            }
        }
    }

    [Fact]
    public void Unknown_section_is_a_one_line_error()
    {
        var r = CliRunner.Run("bench", "--quick", "--skip", "nothing");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--skip 'nothing'", r.Stderr);
    }
}
