using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Peft.Onnx.Core;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>
/// Settings shared by every fuzz test, from the environment so a run can be repeated or widened:
/// PEFT_FUZZ_SEED (base seed, default 20261126), PEFT_FUZZ_COUNT (inputs per parser, default 10,000),
/// PEFT_FUZZ_CASE (run only that case index, to replay a failure), PEFT_FUZZ_TIMEOUT_MS (CPU time per input, default 2000; a run still going after 15x that is a hang).
/// </summary>
public static class FuzzSettings
{
    public static int BaseSeed => Int("PEFT_FUZZ_SEED") ?? 20261126;
    public static int Count => Int("PEFT_FUZZ_COUNT") ?? 10_000;
    public static int? OnlyCase => Int("PEFT_FUZZ_CASE");
    public static TimeSpan PerInput => TimeSpan.FromMilliseconds(Int("PEFT_FUZZ_TIMEOUT_MS") ?? 2000);

    /// <summary>Bytes one input may allocate: generous for real files, far below what an unchecked length would ask for.</summary>
    public static long AllocationBudget(long inputBytes) => 512L * 1024 * 1024 + 64 * inputBytes;

    private static int? Int(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
}

/// <summary>CPU time of the calling thread (clock_gettime(CLOCK_THREAD_CPUTIME_ID) on Linux; wall-clock time elsewhere).</summary>
internal static class ThreadCpuTime
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Seconds; public long Nanoseconds; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec time);

    private const int ThreadCpuClock = 3;
    private static readonly bool Available = OperatingSystem.IsLinux() && Probe();

    private static bool Probe()
    {
        try { return ClockGetTime(ThreadCpuClock, out _) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    public static TimeSpan Now()
    {
        if (!Available) return Stopwatch.GetElapsedTime(0);
        ClockGetTime(ThreadCpuClock, out var t);
        return TimeSpan.FromTicks(t.Seconds * TimeSpan.TicksPerSecond + t.Nanoseconds / 100);
    }
}

/// <summary>One case that ended badly: its index and seed replay it (PEFT_FUZZ_SEED + PEFT_FUZZ_CASE).</summary>
public sealed record FuzzFailure(int Case, int Seed, string Kind, string Detail);

/// <summary>
/// Runs a parser over mutated inputs. Each case gets its own Random from (base seed, parser name, case index), so a
/// failure is replayed by its index alone. An input must end in success or in a <see cref="PeftOnnxException"/>
/// whose message is one line; anything else (another exception type, a hang past the per-input limit, an
/// allocation far beyond the input's size) is a failure, collected and reported with its seed.
/// </summary>
public sealed class FuzzRunner(string parser, ITestOutputHelper output)
{
    public string Parser { get; } = parser;

    public static int CaseSeed(int baseSeed, string parser, int index)
    {
        unchecked
        {
            uint h = 2166136261;
            foreach (char c in parser) h = (h ^ c) * 16777619;
            ulong x = ((ulong)(uint)baseSeed << 32) ^ h ^ ((ulong)(uint)index * 0x9E3779B97F4A7C15UL);
            x ^= x >> 33; x *= 0xff51afd7ed558ccdUL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53UL; x ^= x >> 33;
            return (int)(x & 0x7FFFFFFF);
        }
    }

    /// <summary>
    /// Generates input i with <paramref name="generate"/> (outside the timed region), then runs <paramref name="parse"/>
    /// on it under the time limit. <paramref name="size"/> gives the input's size for the allocation budget.
    /// </summary>
    public void Run<T>(Func<Random, int, T> generate, Action<T> parse, Func<T, long> size, Action<T>? cleanup = null)
    {
        int baseSeed = FuzzSettings.BaseSeed, count = FuzzSettings.Count;
        var limit = FuzzSettings.PerInput;
        var failures = new List<FuzzFailure>();
        int ok = 0, rejected = 0, tried = 0;
        var slowest = (Case: -1, Ms: 0.0);
        var reasons = new Dictionary<string, int>();
        var total = Stopwatch.StartNew();
        output.WriteLine($"fuzz {Parser}: PEFT_FUZZ_SEED={baseSeed} PEFT_FUZZ_COUNT={count} limit {limit.TotalMilliseconds} ms/input");

        IEnumerable<int> cases = FuzzSettings.OnlyCase is { } only ? [only] : Enumerable.Range(0, count);
        foreach (int i in cases)
        {
            int seed = CaseSeed(baseSeed, Parser, i);
            T input = generate(new Random(seed), i);
            tried++;
            Exception? error = null;
            long allocated = 0;
            TimeSpan cpu = TimeSpan.Zero;
            var sw = Stopwatch.StartNew();
            var task = Task.Run(() =>
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                var cpuBefore = ThreadCpuTime.Now();
                try { parse(input); }
                catch (Exception e) { error = e; }
                finally
                {
                    allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                    cpu = ThreadCpuTime.Now() - cpuBefore;
                }
            });
            // The limit is on the CPU time the input costs (exact even when other work loads the machine); a run still
            // going after 15x the limit in wall-clock time is a hang.
            if (!task.Wait(15 * limit))
            {
                failures.Add(new FuzzFailure(i, seed, "hang", $"still running after {15 * limit.TotalMilliseconds} ms"));
                output.WriteLine($"  case {i} (seed {seed}): HANG, stopping this parser's run");
                break;
            }
            sw.Stop();
            if (cpu > limit)
                failures.Add(new FuzzFailure(i, seed, "slow", $"took {cpu.TotalMilliseconds:F0} ms of CPU (limit {limit.TotalMilliseconds} ms)"));
            cleanup?.Invoke(input);
            if (cpu.TotalMilliseconds > slowest.Ms) slowest = (i, cpu.TotalMilliseconds);

            long budget = FuzzSettings.AllocationBudget(size(input));
            if (allocated > budget)
                failures.Add(new FuzzFailure(i, seed, "allocation", $"allocated {allocated:N0} bytes for a {size(input):N0}-byte input"));

            switch (error)
            {
                case null: ok++; break;
                case PeftOnnxException p when p.Message.Length > 0 && p.Message.AsSpan().IndexOfAny("\r\n\u2028\u2029\u0085") < 0:
                    rejected++;
                    var reason = Reason(p.Message);
                    reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
                    break;
                case PeftOnnxException p:
                    var shown = p.Message.Replace("\r", "\\r").Replace("\n", "\\n");
                    failures.Add(new FuzzFailure(i, seed, "multi-line message", shown[..Math.Min(300, shown.Length)]));
                    break;
                default:
                    var frame = error.StackTrace?.Split('\n').FirstOrDefault(l => l.Contains("Peft.Onnx.Core"))?.Trim() ?? error.StackTrace?.Split('\n')[0].Trim();
                    failures.Add(new FuzzFailure(i, seed, error.GetType().FullName!, $"{error.Message.Split('\n')[0]} @ {frame}"));
                    break;
            }
        }
        total.Stop();
        output.WriteLine($"fuzz {Parser}: {tried} inputs, {ok} accepted, {rejected} rejected with PeftOnnxException, {failures.Count} failures; " +
                         $"{total.Elapsed.TotalSeconds:F1} s, slowest case {slowest.Case} ({slowest.Ms:F0} ms CPU)");
        foreach (var (reason, n) in reasons.OrderByDescending(kv => kv.Value).Take(12))
            output.WriteLine($"  rejected {n} x: {reason}");
        foreach (var group in failures.GroupBy(f => (f.Kind, Site(f.Detail))).Take(30))
        {
            var first = group.First();
            output.WriteLine($"  {group.Count()} x {first.Kind}: {first.Detail} (first: case {first.Case}, seed {first.Seed})");
        }
        if (FuzzSettings.OnlyCase is null) Assert.True(tried >= count || failures.Any(f => f.Kind == "hang"), $"{Parser}: only {tried} of {count} inputs ran");
        Assert.True(failures.Count == 0,
            $"fuzz {Parser} (PEFT_FUZZ_SEED={baseSeed}): {failures.Count} of {tried} inputs failed; replay with PEFT_FUZZ_CASE=<case>. " +
            string.Join(" | ", failures.GroupBy(f => (f.Kind, Site(f.Detail))).Take(10)
                .Select(g => $"{g.Count()} x {g.Key.Kind} (case {g.First().Case}, seed {g.First().Seed}): {g.First().Detail}")));
    }

    /// <summary>A rejection message without its file path and with numbers and quoted text blanked, to group them.</summary>
    private static string Reason(string message)
    {
        var text = message;
        int colon = text.IndexOf(": ", StringComparison.Ordinal);
        if (colon > 0 && (text.StartsWith('/') || text.Contains(".json") || text.Contains(".csv") || text.Contains(".safetensors"))) text = text[(colon + 2)..];
        text = System.Text.RegularExpressions.Regex.Replace(text, "'[^']*'", "'_'");
        text = System.Text.RegularExpressions.Regex.Replace(text, "[0-9]+", "N");
        return text.Length > 110 ? text[..110] : text;
    }

    private static string Site(string detail) => detail.Contains(" @ ") ? detail[(detail.IndexOf(" @ ", StringComparison.Ordinal) + 3)..] : detail[..Math.Min(60, detail.Length)];
}
