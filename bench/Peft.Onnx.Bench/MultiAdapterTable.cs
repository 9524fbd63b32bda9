using System.Text.Json;

namespace Peft.Onnx.Bench;

/// <summary>The short table's lines for bench's multi-adapter section.</summary>
public static class MultiAdapterTable
{
    public static void Print(JsonElement m, TextWriter o)
    {
        var model = m.TryGetProperty("model", out var name) ? name.GetString() : "--base";
        o.WriteLine($"multi-adapter ({m.GetProperty("adapters").GetInt32()} LoRA adapters, ranks {string.Join(",", m.GetProperty("ranks").EnumerateArray().Select(r => r.GetInt32()))}) on {model}:");
        foreach (var t in m.GetProperty("batch_8").EnumerateArray().Concat(m.GetProperty("batch_1").EnumerateArray()))
            o.WriteLine($"  {t.GetProperty("variant").GetString(),-12} batch {t.GetProperty("batch").GetInt32()}: {t.GetProperty("tokens_per_second").GetDouble(),9:F1} tokens/s best, {t.GetProperty("median_tokens_per_second").GetDouble():F1} median");
        var genai = m.GetProperty("genai");
        if (genai.TryGetProperty("genai_tokens_per_second", out var g))
            o.WriteLine($"  GenAI, the same {m.GetProperty("adapters").GetInt32()} requests one generator each: {g.GetDouble():F1} tokens/s");
        if (m.TryGetProperty("tiny", out var tiny))
        {
            var f = tiny.GetProperty("figures");
            o.WriteLine($"  on {tiny.GetProperty("model").GetString()} (not a goal): mixed batch 8 x{f.GetProperty("mixed_over_base_b8").GetDouble():F3} of base, one adapter at batch 1 x{f.GetProperty("single_over_merged_b1").GetDouble():F3} of merged");
        }
        foreach (var e in m.GetProperty("memory").EnumerateArray())
            o.WriteLine($"  {e.GetProperty("adapters").GetInt32(),2} adapters: {e.GetProperty("weight_bytes").GetInt64() / 1048576.0:F1} MB of weights (x{e.GetProperty("weight_bytes_over_goal").GetDouble():F3} of base + adapters), RSS +{e.GetProperty("rss_increase_mb").GetDouble():F0} MB (base +{e.GetProperty("base_rss_increase_mb").GetDouble():F0} MB)");
    }
}
