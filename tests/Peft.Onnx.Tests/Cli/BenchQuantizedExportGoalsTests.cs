using System.Text.Json;
using Peft.Onnx.Bench;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>bench --quantize judges each quantized export's time over the copy beside it and its peak RSS over the float32 export's.</summary>
public class BenchQuantizedExportGoalsTests
{
    [Fact]
    public void Quantized_exports_are_judged_on_their_worst_time_and_memory_the_float_export_not()
    {
        var goals = JsonSerializer.SerializeToElement(BenchGoals.Judge(JsonDocument.Parse("""
        {
          "quantized": {
            "exports": [
              { "variant": "fp32", "export_over_copy": 5.0, "peak_rss_over_fp32": 1.0 },
              { "variant": "int8", "export_over_copy": 2.8, "peak_rss_over_fp32": 0.5 },
              { "variant": "int4", "export_over_copy": 3.2, "peak_rss_over_fp32": 0.55 }
            ],
            "decode": []
          }
        }
        """).RootElement));
        var time = goals.GetProperty("quantized_export_over_copy");
        Assert.Equal(3.2, time.GetProperty("measured").GetDouble());
        Assert.Equal(3.0, time.GetProperty("target").GetDouble());
        Assert.False(time.GetProperty("met").GetBoolean());
        Assert.Equal("int4", time.GetProperty("worst_at").GetString());
        Assert.Equal(2, time.GetProperty("values").EnumerateObject().Count());
        var memory = goals.GetProperty("quantized_export_peak_rss_over_fp32");
        Assert.Equal(0.55, memory.GetProperty("measured").GetDouble());
        Assert.True(memory.GetProperty("met").GetBoolean());
        Assert.Equal("<=", memory.GetProperty("comparison").GetString());
    }
}
