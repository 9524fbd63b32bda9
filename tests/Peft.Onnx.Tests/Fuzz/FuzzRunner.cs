using System.Diagnostics;
using Peft.Onnx.Core;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>
/// Runs a parser over mutated inputs. Each case gets its own Random from (base seed, parser name, case index), so a
/// failure is replayed by its index alone. An input must end in success or in a <see cref="PeftOnnxException"/>
/// whose message is one line; anything else (another exception type, a hang past the per-input limit, an
/// allocation far beyond the input's size) is a failure, collected and reported with its seed. A full run must also
/// have some inputs accepted (<see cref="FuzzSettings.MinAcceptedFraction"/>), so a mutator that only makes garbage fails.
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
        if (tried < FuzzSettings.MinInputsToJudgeAcceptance)
            output.WriteLine($"  the share of accepted inputs is not judged on fewer than {FuzzSettings.MinInputsToJudgeAcceptance} inputs");
        if (FuzzSettings.OnlyCase is null) AssertSomeAccepted(Parser, baseSeed, ok, tried);
    }

    /// <summary>
    /// At least <see cref="FuzzSettings.MinAcceptedFraction"/> of a run's inputs accepted (runs shorter than
    /// <see cref="FuzzSettings.MinInputsToJudgeAcceptance"/> are not judged).
    /// </summary>
    internal static void AssertSomeAccepted(string parser, int baseSeed, int accepted, int tried)
    {
        if (tried < FuzzSettings.MinInputsToJudgeAcceptance) return;
        int needed = (int)Math.Ceiling(FuzzSettings.MinAcceptedFraction * tried);
        Assert.True(accepted >= needed,
            $"fuzz {parser} (PEFT_FUZZ_SEED={baseSeed}): only {accepted} of {tried} mutated inputs were accepted, at least {needed} expected: " +
            "a mutator whose inputs are all rejected tests nothing past the parser's first check");
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
