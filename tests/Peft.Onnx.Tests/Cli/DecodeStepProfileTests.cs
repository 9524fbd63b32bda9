using System.Text.Json;
using Peft.Onnx.Bench;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>The profile bench attaches when a quantized goal is missed: kernels per operator from ORT's profiler, MatMulNBits settings from the graph.</summary>
public class DecodeStepProfileTests
{
    [Fact]
    public void Profile_of_an_int4_export_names_matmulnbits_its_settings_and_the_cpu_kernel()
    {
        var dir = Paths.TempDir();
        try
        {
            var export = Path.Combine(dir, "int4");
            OnnxExport.Export(Paths.Case("bloom", "base_model"), null, export,
                new ExportOptions { Quantize = WeightQuantization.FromOptions("int4", 16, false, null, false, false, null) });
            var profile = JsonSerializer.SerializeToElement(DecodeStepProfile.Run(export, dir, pastLength: 4, steps: 3));

            // the second generation's three steps (the first generation and the second's prefill left out)
            Assert.Equal(3, profile.GetProperty("steps_summed").GetInt32());
            Assert.True(profile.GetProperty("run_microseconds_per_step").GetDouble() >= profile.GetProperty("kernel_microseconds_per_step").GetDouble() - 1);
            // tiny-bloom: 2 layers x (key, value) of [1, 4 heads, 4 + 3 positions, 16] float32 after the last step
            Assert.Equal(4L * 4 * 7 * 16 * 4, profile.GetProperty("kv_cache_bytes_at_last_step").GetInt64());
            var ops = profile.GetProperty("operators").EnumerateArray().ToList();
            var nbits = Assert.Single(ops, o => o.GetProperty("op").GetString() == "MatMulNBits");
            Assert.Equal("CPUExecutionProvider", nbits.GetProperty("provider").GetString());
            Assert.True(nbits.GetProperty("kernels_per_step").GetDouble() > 0);
            Assert.Equal(1.0, ops.Sum(o => o.GetProperty("share").GetDouble()), 2);
            // the MLP int4 at block 16, the attention layers and the head int8 (their default in an int4 export), level 4 everywhere
            var settings = profile.GetProperty("matmulnbits_nodes").EnumerateArray()
                .Select(n => (n.GetProperty("bits").GetInt64(), n.GetProperty("block_size").GetInt64(), n.GetProperty("accuracy_level").GetInt64(), n.GetProperty("count").GetInt32()))
                .OrderBy(n => n.Item1).ToList();
            Assert.Equal((4L, 16L, 4L, 2 * 2), settings[0]);
            Assert.Equal((8L, 16L, 4L, 2 * 2 + 1), settings[1]);
            Assert.False(string.IsNullOrEmpty(profile.GetProperty("cpu_features").GetProperty("int8_kernel").GetString()));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Decode_chain_grows_the_cache_by_one_position_per_step_at_every_batch_size()
    {
        var export = Paths.TempDir();
        try
        {
            OnnxExport.Export(Paths.Case("bloom", "base_model"), null, export, new ExportOptions());
            using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(Path.Combine(export, "model.onnx"));
            using var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions();
            foreach (var batch in new[] { 1, 3 })
            {
                using var chain = new DecodeChain(session, batch);
                chain.Prefill(5, runOptions);
                Assert.Equal(5, chain.Length);
                chain.Step(runOptions);
                chain.Step(runOptions);
                Assert.Equal(7, chain.Length);
                Assert.Equal(4L * batch * 4 * 7 * 16 * 4, chain.CacheBytes);
            }
        }
        finally { Directory.Delete(export, true); }
    }

    [Fact]
    public void Summary_skips_the_runs_asked_and_reports_the_time_runs_spend_outside_kernels()
    {
        var dir = Paths.TempDir();
        try
        {
            var path = Path.Combine(dir, "profile.json");
            File.WriteAllText(path, """
            [
              { "cat": "Session", "name": "model_run", "ts": 100, "dur": 50 },
              { "cat": "Node", "name": "a_kernel_time", "ts": 110, "dur": 1000, "args": { "op_name": "Concat", "provider": "CPUExecutionProvider" } },
              { "cat": "Session", "name": "model_run", "ts": 200, "dur": 50 },
              { "cat": "Node", "name": "a_kernel_time", "ts": 210, "dur": 30, "args": { "op_name": "Concat", "provider": "CPUExecutionProvider" } },
              { "cat": "Session", "name": "model_run", "ts": 300, "dur": 60 },
              { "cat": "Node", "name": "a_kernel_time", "ts": 310, "dur": 20, "args": { "op_name": "Concat", "provider": "CPUExecutionProvider" } },
              { "cat": "Node", "name": "b_kernel_time", "ts": 330, "dur": 10, "args": { "op_name": "Add", "provider": "CPUExecutionProvider" } }
            ]
            """);
            var s = JsonSerializer.SerializeToElement(DecodeStepProfile.Summarize(path, skipRuns: 2));
            Assert.Equal(1, s.GetProperty("steps_summed").GetInt32());
            Assert.Equal(30.0, s.GetProperty("kernel_microseconds_per_step").GetDouble());
            Assert.Equal(60.0, s.GetProperty("run_microseconds_per_step").GetDouble());
            Assert.Equal(30.0, s.GetProperty("outside_kernels_microseconds_per_step").GetDouble());
            Assert.Equal(20.0, s.GetProperty("operators")[0].GetProperty("microseconds_per_step").GetDouble());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Summary_leaves_out_the_first_run_and_sums_per_operator_and_provider()
    {
        var dir = Paths.TempDir();
        try
        {
            var path = Path.Combine(dir, "profile.json");
            File.WriteAllText(path, """
            [
              { "cat": "Session", "name": "model_run", "ts": 100, "dur": 50 },
              { "cat": "Node", "name": "a_kernel_time", "ts": 110, "dur": 1000, "args": { "op_name": "MatMulNBits", "provider": "CPUExecutionProvider" } },
              { "cat": "Session", "name": "model_run", "ts": 200, "dur": 50 },
              { "cat": "Node", "name": "a_kernel_time", "ts": 210, "dur": 30, "args": { "op_name": "MatMulNBits", "provider": "CPUExecutionProvider" } },
              { "cat": "Node", "name": "b_kernel_time", "ts": 215, "dur": 10, "args": { "op_name": "Add", "provider": "CPUExecutionProvider" } },
              { "cat": "Node", "name": "b_fence_before", "ts": 215, "dur": 99, "args": { "op_name": "Add" } },
              { "cat": "Session", "name": "model_run", "ts": 300, "dur": 50 },
              { "cat": "Node", "name": "a_kernel_time", "ts": 310, "dur": 50, "args": { "op_name": "MatMulNBits", "provider": "CPUExecutionProvider" } }
            ]
            """);
            var s = JsonSerializer.SerializeToElement(DecodeStepProfile.Summarize(path));
            Assert.Equal(2, s.GetProperty("steps_summed").GetInt32());
            Assert.Equal(45.0, s.GetProperty("kernel_microseconds_per_step").GetDouble());
            var first = s.GetProperty("operators")[0];
            Assert.Equal("MatMulNBits", first.GetProperty("op").GetString());
            Assert.Equal(40.0, first.GetProperty("microseconds_per_step").GetDouble());
            Assert.Equal(1.0, first.GetProperty("kernels_per_step").GetDouble());
            Assert.Equal(Math.Round(80.0 / 90, 4), first.GetProperty("share").GetDouble());
        }
        finally { Directory.Delete(dir, true); }
    }
}
