using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Bench;

/// <summary>
/// Where a decode step's time goes: ONNX Runtime's own profiler (SessionOptions.EnableProfiling) over a few batch-1
/// decode steps of an exported decoder-only graph (serving options: all graph optimizations), summed per operator
/// and provider, beside the MatMulNBits settings the graph asks for (bits, block size, accuracy level) and the CPU
/// features that decide which MLAS kernel serves them: accuracy level 4 computes in int8 with AVX2 and is fastest with
/// AVX-VNNI / AVX512-VNNI; without a kernel for the asked level MLAS computes in float32 (the fallback).
/// </summary>
public static class DecodeStepProfile
{
    public static Dictionary<string, object?> Run(string exportDir, string work, int pastLength = 64, int steps = 5) =>
        Run(exportDir, work, pastLength, steps, batch: 1, adapterIndex: null);

    /// <summary>
    /// The profile of a batch of <paramref name="batch"/> rows; a multi-adapter graph gets <paramref name="adapterIndex"/>
    /// (one per row; null: every row on the base) and keeps its stacked tensors' exported defaults.
    /// </summary>
    public static Dictionary<string, object?> Run(string exportDir, string work, int pastLength, int steps, int batch, long[]? adapterIndex)
    {
        var prefix = Path.Combine(work, "profile-" + Path.GetFileName(exportDir.TrimEnd('/')));
        using var options = new SessionOptions
        {
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ProfileOutputPathPrefix = prefix,
            EnableProfiling = true,
        };
        options.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", Path.GetFullPath(exportDir));
        string profile;
        using (var session = new InferenceSession(Path.Combine(exportDir, CausalLmContract.ModelFile), options))
        {
            for (int s = 0; s < steps; s++)
            {
                using var outputs = session.Run(DecodeStepFeeds(session, pastLength + s, batch, adapterIndex));
            }
            profile = session.EndProfiling();
        }
        try
        {
            var result = Summarize(profile);
            result["matmulnbits_nodes"] = MatMulNBitsSettings(Path.Combine(exportDir, CausalLmContract.ModelFile));
            result["cpu_features"] = CpuFeatures();
            result["past_length"] = pastLength;
            result["batch"] = batch;
            return result;
        }
        finally
        {
            File.Delete(profile);
        }
    }

    /// <summary>
    /// Kernel time per operator type and provider over the profiled runs after the first (which packs weights and
    /// sizes buffers), largest first.
    /// </summary>
    public static Dictionary<string, object?> Summarize(string profilePath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(profilePath));
        var events = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement : doc.RootElement.GetProperty("traceEvents");
        var runs = events.EnumerateArray()
            .Where(e => e.TryGetProperty("name", out var n) && n.GetString() == "model_run" && e.TryGetProperty("ts", out _))
            .Select(e => (Start: e.GetProperty("ts").GetInt64(), End: e.GetProperty("ts").GetInt64() + e.GetProperty("dur").GetInt64()))
            .OrderBy(r => r.Start).ToList();
        long firstEnd = runs.Count > 1 ? runs[0].End : long.MinValue;
        int steps = Math.Max(1, runs.Count > 1 ? runs.Count - 1 : runs.Count);
        var byOp = new Dictionary<(string Op, string Provider), (long Micros, int Count)>();
        // each node's least time over the steps: what it costs when no other process preempts it (a loaded machine)
        var leastByNode = new Dictionary<string, ((string Op, string Provider) Key, long Micros)>(StringComparer.Ordinal);
        long total = 0;
        foreach (var e in events.EnumerateArray())
        {
            if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node") continue;
            if (e.TryGetProperty("ts", out var ts) && ts.GetInt64() < firstEnd) continue;
            if (!e.TryGetProperty("name", out var name) || !(name.GetString() ?? "").EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
            if (!e.TryGetProperty("args", out var args) || !args.TryGetProperty("op_name", out var op)) continue;
            var provider = args.TryGetProperty("provider", out var p) ? p.GetString() ?? "" : "";
            long dur = e.TryGetProperty("dur", out var d) ? d.GetInt64() : 0;
            var key = (op.GetString() ?? "", provider);
            var (micros, count) = byOp.GetValueOrDefault(key);
            byOp[key] = (micros + dur, count + 1);
            total += dur;
            var node = name.GetString()!;
            leastByNode[node] = leastByNode.TryGetValue(node, out var least) ? (key, Math.Min(least.Micros, dur)) : (key, dur);
        }
        return new Dictionary<string, object?>
        {
            ["steps_summed"] = steps,
            ["kernel_microseconds_per_step"] = Math.Round(total / (double)steps, 1),
            ["operators"] = byOp.OrderByDescending(kv => kv.Value.Micros).Select(kv => new Dictionary<string, object?>
            {
                ["op"] = kv.Key.Op,
                ["provider"] = kv.Key.Provider,
                ["kernels_per_step"] = Math.Round(kv.Value.Count / (double)steps, 1),
                ["microseconds_per_step"] = Math.Round(kv.Value.Micros / (double)steps, 1),
                ["share"] = total > 0 ? Math.Round(kv.Value.Micros / (double)total, 4) : 0,
                ["least_microseconds_per_step"] = leastByNode.Values.Where(n => n.Key == kv.Key).Sum(n => n.Micros),
            }).ToList(),
            ["kernel_least_microseconds_per_step"] = leastByNode.Values.Sum(n => n.Micros),
        };
    }

    /// <summary>The distinct (bits, block_size, accuracy_level) of the graph's MatMulNBits nodes, with their counts.</summary>
    public static List<Dictionary<string, object?>> MatMulNBitsSettings(string modelPath)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelPath));
        long Attr(NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? 0;
        return model.Graph.Node.Where(n => n.OpType == "MatMulNBits")
            .GroupBy(n => (Bits: Attr(n, "bits"), Block: Attr(n, "block_size"), Level: Attr(n, "accuracy_level")))
            .Select(g => new Dictionary<string, object?>
            {
                ["bits"] = g.Key.Bits, ["block_size"] = g.Key.Block, ["accuracy_level"] = g.Key.Level, ["count"] = g.Count(),
            }).ToList();
    }

    /// <summary>The x86 features MLAS picks MatMulNBits kernels by (from /proc/cpuinfo; empty elsewhere).</summary>
    public static Dictionary<string, object?> CpuFeatures()
    {
        string flags = "", modelName = "";
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (flags == "" && line.StartsWith("flags", StringComparison.Ordinal)) flags = line[(line.IndexOf(':') + 1)..];
                if (modelName == "" && line.StartsWith("model name", StringComparison.Ordinal)) modelName = line[(line.IndexOf(':') + 1)..].Trim();
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        var set = flags.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        var wanted = new[] { "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8" };
        return new Dictionary<string, object?>
        {
            ["model_name"] = modelName,
            ["flags"] = wanted.ToDictionary(f => f, f => (object?)set.Contains(f)),
            ["int8_kernel"] = set.Contains("avx512_vnni") ? "AVX512-VNNI" : set.Contains("avx_vnni") ? "AVX-VNNI" : set.Contains("avx2") ? "AVX2 (no VNNI: int8 dot products in several instructions)" : "none (float32 fallback)",
        };
    }

    /// <summary>Zero-filled decode-step inputs for every graph input: one new token over <paramref name="past"/> cached positions.</summary>
    private static List<NamedOnnxValue> DecodeStepFeeds(InferenceSession session, int past, int batch, long[]? adapterIndex)
    {
        var values = new List<NamedOnnxValue>();
        foreach (var (name, meta) in session.InputMetadata)
        {
            // stacked adapter tensors are overridable initializers: their defaults are the export's adapters
            if (AdapterStackNames.Parse(name) != null) continue;
            if (name == CausalLmContract.AdapterIndex)
            {
                values.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(adapterIndex ?? Enumerable.Repeat(-1L, batch).ToArray(), [batch])));
                continue;
            }
            var dims = meta.Dimensions.Select((d, i) => d >= 0 ? d : i == 0 ? batch : name.StartsWith("past", StringComparison.Ordinal) ? past : name == CausalLmContract.AttentionMask ? past + 1 : 1).ToArray();
            if (meta.ElementType == typeof(long))
            {
                var t = new DenseTensor<long>(dims);
                if (name == CausalLmContract.AttentionMask) t.Fill(1);
                else if (name == CausalLmContract.PositionIds) t.Fill(past);
                else if (name == CausalLmContract.InputIds) t.Fill(5);
                else if (name == CausalLmContract.NumLogitsToKeep) t.Fill(1);
                values.Add(NamedOnnxValue.CreateFromTensor(name, t));
            }
            else values.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>(dims)));
        }
        return values;
    }
}
