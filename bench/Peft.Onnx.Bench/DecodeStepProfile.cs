using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Bench;

/// <summary>
/// Where a decode step's time goes: ONNX Runtime's own profiler (SessionOptions.EnableProfiling) over decode steps of an
/// exported decoder-only graph run as the Runtime runs them (serving options: all graph optimizations, idle threads
/// sleeping; one IO binding, each step's present outputs bound as the next past, <see cref="DecodeChain"/>), summed per
/// operator and provider, beside the MatMulNBits settings the graph asks for (bits, block size, accuracy level) and the
/// CPU features that decide which MLAS kernel serves them: accuracy level 4 computes in int8 with AVX2 and is fastest
/// with AVX-VNNI / AVX512-VNNI; without a kernel for the asked level MLAS computes in float32 (the fallback).
/// The profiled steps follow a first, unprofiled-in-the-summary generation of the same lengths: ONNX Runtime's arena
/// then already holds buffers of every size the steps ask for, as in serving. Profiling a fresh session's first
/// steps instead charges the arena's growth to the kernels that allocate (each step's presents are larger than any
/// buffer freed so far: fresh pages, thousands of page faults per step on a bloomz-560m-sized graph, counted in the
/// Concat that writes the cache).
/// </summary>
public static class DecodeStepProfile
{
    /// <param name="pastLength">prompt tokens before the first profiled step</param>
    /// <param name="steps">decode steps profiled (each one position longer than the last)</param>
    /// <param name="warmUp">run the same generation once before the profiled one (false: profile a fresh session's first steps)</param>
    /// <param name="adapterIndex">a multi-adapter graph's adapter_index, one per row (null: every row on the base); its stacked tensors keep their exported defaults</param>
    public static Dictionary<string, object?> Run(string exportDir, string work, int pastLength = 64, int steps = 5, int batch = 1, bool warmUp = true, long[]? adapterIndex = null)
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
        // the Runtime's default (DeviceOptions.AllowSpinning false)
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        string profile;
        long? faults = null;
        long cacheBytes = 0;
        using (var session = new InferenceSession(Path.Combine(exportDir, CausalLmContract.ModelFile), options))
        using (var runOptions = new RunOptions())
        {
            int generations = warmUp ? 2 : 1;
            for (int g = 0; g < generations; g++)
            {
                using var chain = new DecodeChain(session, batch, adapterIndex);
                chain.Prefill(pastLength, runOptions);
                long? before = PageFaults.Minor();
                for (int s = 0; s < steps; s++) chain.Step(runOptions);
                faults = before is { } b && PageFaults.Minor() is { } a ? a - b : null;
                cacheBytes = chain.CacheBytes;
            }
            profile = session.EndProfiling();
        }
        try
        {
            // the summary's runs: the last generation's steps (its prefill and everything before it left out)
            var result = Summarize(profile, skipRuns: warmUp ? steps + 2 : 1);
            result["matmulnbits_nodes"] = MatMulNBitsSettings(Path.Combine(exportDir, CausalLmContract.ModelFile));
            result["cpu_features"] = CpuFeatures();
            result["past_length"] = pastLength;
            result["batch"] = batch;
            result["warm_up"] = warmUp;
            result["minor_page_faults_per_step"] = faults is { } f ? Math.Round(f / (double)steps, 1) : null;
            // a step's Concat nodes read the past and write the present: about twice the cache
            result["kv_cache_bytes_at_last_step"] = cacheBytes;
            double concatMicros = ((List<Dictionary<string, object?>>)result["operators"]!)
                .Where(o => (string?)o["op"] == "Concat").Sum(o => (double)o["microseconds_per_step"]!);
            result["concat_gb_per_second"] = concatMicros > 0 ? Math.Round(2.0 * cacheBytes / (concatMicros * 1e3), 2) : null;
            return result;
        }
        finally
        {
            File.Delete(profile);
        }
    }

    /// <summary>
    /// Kernel time per operator type and provider over the profiled runs after the first <paramref name="skipRuns"/>
    /// (the first packs weights and sizes buffers), largest first, and the runs' own time: what ONNX Runtime spends
    /// in a run outside its kernels (scheduling, waking the thread pool, allocating) is the difference.
    /// </summary>
    public static Dictionary<string, object?> Summarize(string profilePath, int skipRuns = 1)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(profilePath));
        var events = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement : doc.RootElement.GetProperty("traceEvents");
        var runs = events.EnumerateArray()
            .Where(e => e.TryGetProperty("name", out var n) && n.GetString() == "model_run" && e.TryGetProperty("ts", out _))
            .Select(e => (Start: e.GetProperty("ts").GetInt64(), End: e.GetProperty("ts").GetInt64() + e.GetProperty("dur").GetInt64()))
            .OrderBy(r => r.Start).ToList();
        int skip = runs.Count > skipRuns ? skipRuns : 0;
        long firstEnd = skip > 0 ? runs[skip - 1].End : long.MinValue;
        var summed = runs.Skip(skip).ToList();
        int steps = Math.Max(1, summed.Count);
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
        double runMicros = summed.Count > 0 ? summed.Average(r => r.End - r.Start) : 0;
        return new Dictionary<string, object?>
        {
            ["steps_summed"] = steps,
            ["kernel_microseconds_per_step"] = Math.Round(total / (double)steps, 1),
            ["run_microseconds_per_step"] = Math.Round(runMicros, 1),
            ["outside_kernels_microseconds_per_step"] = Math.Round(Math.Max(0, runMicros - total / (double)steps), 1),
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
}
