using System.Text.Json;

namespace Peft.Onnx.Bench;

/// <summary>The short table's lines for bench's quantized section.</summary>
public static class QuantizedTable
{
    public static void Print(JsonElement q, TextWriter o)
    {
        o.WriteLine($"quantized ({q.GetProperty("config").GetString()}, read {q.GetProperty("read_gb_per_second").GetDouble():F2} GB/s):");
        foreach (var e in q.GetProperty("exports").EnumerateArray())
            o.WriteLine($"  export {e.GetProperty("variant").GetString(),-5} {e.GetProperty("export_seconds").GetDouble(),7:F2} s, x{e.GetProperty("export_over_copy").GetDouble():F2} the copy, peak RSS {e.GetProperty("peak_rss_mb").GetDouble():F0} MB (x{e.GetProperty("peak_rss_over_fp32").GetDouble():F2} fp32's), {e.GetProperty("weight_bytes").GetInt64() / 1048576.0:F0} MB");
        var genai = q.TryGetProperty("genai", out var g) ? g.EnumerateArray().ToList() : [];
        foreach (var d in q.GetProperty("decode").EnumerateArray())
        {
            var variant = d.GetProperty("variant").GetString();
            int batch = d.GetProperty("batch").GetInt32();
            var run = genai.FirstOrDefault(r => r.GetProperty("variant").GetString() == variant && r.GetProperty("batch").GetInt32() == batch);
            var paired = d.GetProperty("paired_decode_over_fp32");
            o.WriteLine($"  decode {variant,-5} batch {batch}: {d.GetProperty("decode_tokens_per_second").GetDouble(),8:F2} tokens/s" +
                (paired.ValueKind == JsonValueKind.Number ? $", x{paired.GetDouble():F2} fp32" : "") +
                $", {d.GetProperty("fraction_of_bandwidth_limit").GetDouble():P0} of its bandwidth limit" +
                (run.ValueKind == JsonValueKind.Object && run.TryGetProperty("ours_over_genai", out var r) && r.ValueKind == JsonValueKind.Number ? $", x{r.GetDouble():F2} GenAI" : ""));
        }
        if (q.TryGetProperty("int4_options", out var options))
            foreach (var x in options.EnumerateArray())
            {
                var paired = x.GetProperty("paired_decode_over_fp32");
                o.WriteLine($"  option {x.GetProperty("variant").GetString(),-15} ({x.GetProperty("export_arguments").GetString()}): " +
                    (paired.ValueKind == JsonValueKind.Number ? $"x{paired.GetDouble():F2} fp32" : "no paired ratio") +
                    $", {x.GetProperty("bytes_per_token").GetInt64() / 1048576.0:F0} MB per token, {x.GetProperty("fraction_of_bandwidth_limit").GetDouble():P0} of its bandwidth limit");
            }
        if (q.TryGetProperty("kernel_ceiling", out var ceiling))
        {
            foreach (var k in ceiling.GetProperty("settings").EnumerateArray())
            {
                var resident = k.GetProperty("resident");
                var streamed = k.GetProperty("streamed");
                o.WriteLine($"  kernel {k.GetProperty("bits").GetInt32()}-bit block {k.GetProperty("block_size").GetInt32(),-3} level {k.GetProperty("accuracy_level").GetInt32()} " +
                    $"{k.GetProperty("k").GetInt64()}x{k.GetProperty("n").GetInt64(),-6}: resident {resident.GetProperty("weights_per_second").GetDouble() / 1e9,6:F2} G weights/s (best {resident.GetProperty("best_weights_per_second").GetDouble() / 1e9:F2}) " +
                    $"({resident.GetProperty("gb_per_second").GetDouble():F2} GB/s), streamed {streamed.GetProperty("weights_per_second").GetDouble() / 1e9,6:F2} G weights/s " +
                    $"({streamed.GetProperty("gb_per_second").GetDouble():F2} GB/s, read bandwidth {ceiling.GetProperty("read_gb_per_second").GetDouble():F2})");
            }
            foreach (var m in ceiling.GetProperty("models").EnumerateArray())
                o.WriteLine($"  ceiling {m.GetProperty("variant").GetString(),-15}: MatMulNBits floor {m.GetProperty("floor_resident_microseconds").GetDouble() / 1e3:F2} ms resident " +
                    $"({m.GetProperty("floor_streamed_microseconds").GetDouble() / 1e3:F2} ms streamed) + rest {m.GetProperty("rest_microseconds").GetDouble() / 1e3:F2} ms " +
                    $"vs {m.GetProperty("needed_step_microseconds").GetDouble() / 1e3:F2} ms needed for x{m.GetProperty("goal_over_fp32").GetDouble():F1}: " +
                    $"at best x{m.GetProperty("best_over_fp32").GetDouble():F2} fp32 ({(m.GetProperty("reachable_by_kernels").GetBoolean() ? "reachable" : "NOT reachable")} by the kernels' arithmetic), " +
                    $"x{m.GetProperty("streamed_over_fp32").GetDouble():F2} at their streamed rate ({(m.GetProperty("reachable_at_streamed_rate").GetBoolean() ? "reachable" : "NOT reachable")})");
        }
        if (q.TryGetProperty("profiles", out var profiles))
            foreach (var p in profiles.EnumerateObject())
            {
                var top = p.Value.GetProperty("operators").EnumerateArray().Take(3)
                    .Select(op => $"{op.GetProperty("op").GetString()} {op.GetProperty("share").GetDouble():P0}");
                var nbits = p.Value.GetProperty("matmulnbits_nodes").EnumerateArray()
                    .Select(n => $"{n.GetProperty("count").GetInt32()} x {n.GetProperty("bits").GetInt64()}-bit level {n.GetProperty("accuracy_level").GetInt64()}");
                o.WriteLine($"  profile {p.Name}: {string.Join(", ", top)}; MatMulNBits {string.Join(", ", nbits)}; int8 kernel {p.Value.GetProperty("cpu_features").GetProperty("int8_kernel").GetString()}");
            }
    }
}
