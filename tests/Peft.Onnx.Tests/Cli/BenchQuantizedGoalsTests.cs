using System.Text.Json;
using Peft.Onnx.Bench;
using Peft.Onnx.Core;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>bench's quantized and multi-adapter goals judged from their sections, and their options' refusals.</summary>
public class BenchQuantizedGoalsTests
{
    private static JsonElement Goals(string resultJson) =>
        JsonSerializer.SerializeToElement(BenchGoals.Judge(JsonDocument.Parse(resultJson).RootElement));

    [Fact]
    public void Quantized_goals_take_batch_1_figures_and_the_lower_genai_ratio()
    {
        var goals = Goals("""
        {
          "quantized": {
            "decode": [
              { "variant": "fp32", "batch": 1, "paired_decode_over_fp32": 1.0, "fraction_of_bandwidth_limit": 0.95 },
              { "variant": "int8", "batch": 1, "paired_decode_over_fp32": 2.6, "fraction_of_bandwidth_limit": 0.79 },
              { "variant": "int4", "batch": 1, "paired_decode_over_fp32": 3.9, "fraction_of_bandwidth_limit": 0.85 },
              { "variant": "int8", "batch": 8, "paired_decode_over_fp32": 1.1, "fraction_of_bandwidth_limit": 0.2 },
              { "variant": "int4", "batch": 8, "paired_decode_over_fp32": 1.2, "fraction_of_bandwidth_limit": 0.3 }
            ],
            "genai": [
              { "variant": "fp32", "batch": 1, "ours_over_genai": 0.5 },
              { "variant": "int8", "batch": 1, "ours_over_genai": 1.3 },
              { "variant": "int4", "batch": 1, "ours_over_genai": 1.05 },
              { "variant": "int4", "batch": 8, "ours_over_genai": 0.2 }
            ]
          },
          "multi_adapter": { "figures": { "mixed_over_base_b8": 0.9, "single_over_merged_b1": 0.89, "over_genai": null } }
        }
        """);
        void Check(string name, double measured, double target, bool met, string worst)
        {
            var g = goals.GetProperty(name);
            Assert.Equal(measured, g.GetProperty("measured").GetDouble(), 6);
            Assert.Equal(target, g.GetProperty("target").GetDouble());
            Assert.Equal(met, g.GetProperty("met").GetBoolean());
            Assert.Equal(worst, g.GetProperty("worst_at").GetString());
        }
        Check("quantized_int8_decode_over_fp32", 2.6, 2.5, true, "int8 batch 1");
        Check("quantized_int4_decode_over_fp32", 3.9, 4.0, false, "int4 batch 1");
        // the lower of int8 and int4 at batch 1; fp32 and batch 8 do not count
        Check("quantized_ours_over_genai", 1.05, 1.0, true, "int4 batch 1");
        Check("quantized_int8_bandwidth_fraction", 0.79, 0.8, false, "int8 batch 1");
        Check("quantized_int4_bandwidth_fraction", 0.85, 0.8, true, "int4 batch 1");
        Check("multi_adapter_mixed_over_base_b8", 0.9, 0.85, true, "mixed_over_base_b8");
        Check("multi_adapter_single_over_merged_b1", 0.89, 0.9, false, "single_over_merged_b1");
        // GenAI did not run: no figure, no goal
        Assert.False(goals.TryGetProperty("multi_adapter_over_genai", out _));
    }

    [Fact]
    public void Quantize_widths_batch_sizes_and_skip_parts_are_checked()
    {
        Assert.Equal(["int8", "int4"], BenchArguments.List(" int8, int4 ,"));
        Assert.Contains("'int3' is not one of int8, int4", Assert.Throws<PeftOnnxException>(() => BenchArguments.Check([], [], ["int3"])).Message);
        Assert.Contains("names a width twice", Assert.Throws<PeftOnnxException>(() => BenchArguments.Check([], [], ["int4", "int4"])).Message);
        Assert.Contains("--skip 'gpu'", Assert.Throws<PeftOnnxException>(() => BenchArguments.Check(["gpu"], [], [])).Message);
        Assert.Contains("--decode-models 'gpt3'", Assert.Throws<PeftOnnxException>(() => BenchArguments.Check([], ["gpt3"], [])).Message);
        BenchArguments.Check(["genai"], ["gpt2-124m"], ["int8", "int4"]);
        Assert.Equal([1, 8], BenchArguments.BatchSizes(null, quick: false));
        Assert.Equal([1, 2], BenchArguments.BatchSizes(null, quick: true));
        Assert.Equal([4, 16], BenchArguments.BatchSizes("4,16", quick: true));
        Assert.Contains("'0' is not an integer >= 1", Assert.Throws<PeftOnnxException>(() => BenchArguments.BatchSizes("1,0", false)).Message);
        Assert.Contains("is empty", Assert.Throws<PeftOnnxException>(() => BenchArguments.BatchSizes(",", false)).Message);
    }

    [Fact]
    public void Multi_adapter_ranks_span_8_to_16()
    {
        Assert.Equal([8, 9, 10, 11, 12, 13, 14, 16], Enumerable.Range(0, MultiAdapterBench.Adapters).Select(MultiAdapterBench.Rank));
    }
}
