using System.Text.Json;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>`bench --quick`: one JSON object holding every figure the issue names (timings themselves are not checked).</summary>
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

        var genai = json.GetProperty("genai");
        Assert.True(genai.TryGetProperty("available", out _));
        Assert.True(genai.TryGetProperty("runs", out _));
        if (!genai.GetProperty("available").GetBoolean()) Assert.False(string.IsNullOrEmpty(genai.GetProperty("note").GetString()));

        var export = json.GetProperty("export");
        foreach (var key in new[] { "export_seconds", "export_peak_rss_bytes", "copy_seconds", "export_over_copy", "checkpoint_bytes" })
            Assert.True(export.TryGetProperty(key, out _), $"export lacks {key}");
        Assert.True(export.GetProperty("export_peak_rss_bytes").GetInt64() > 0);

        var trainer = json.GetProperty("trainer");
        Assert.True(trainer.GetProperty("base_forward_backward").GetProperty("step_seconds").GetDouble() > 0);
        var methods = trainer.GetProperty("methods").EnumerateArray().Select(m => m.GetProperty("method").GetString()).ToList();
        Assert.Equal(["lora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning"], methods);
        foreach (var m in trainer.GetProperty("methods").EnumerateArray())
            Assert.True(m.GetProperty("samples_per_second").GetDouble() > 0);
    }

    [Fact]
    public void Unknown_section_is_a_one_line_error()
    {
        var r = CliRunner.Run("bench", "--quick", "--skip", "nothing");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--skip 'nothing'", r.Stderr);
    }
}
