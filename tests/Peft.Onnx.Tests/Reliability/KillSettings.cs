using System.Globalization;

namespace Peft.Onnx.Tests.Reliability;

/// <summary>
/// Settings shared by the kill -9 tests, from the environment like the fuzzers' PEFT_FUZZ_*: PEFT_KILL_SEED (base seed of
/// the kill delays, default 20261126), PEFT_KILL_COUNT (kills per kind of write, default 12), PEFT_KILL_CASE (run only
/// that kill, to replay a failure). A kill lands where the delay and the machine's speed put it, so a replay repeats
/// the delay, not necessarily the exact instruction. A run that ends before its kill is due does not count: the tests try
/// up to three times PEFT_KILL_COUNT runs to get PEFT_KILL_COUNT kills.
/// </summary>
public static class KillSettings
{
    public static int BaseSeed => Int("PEFT_KILL_SEED") ?? 20261126;
    public static int Count => Int("PEFT_KILL_COUNT") ?? 12;
    public static int? OnlyCase => Int("PEFT_KILL_CASE");

    /// <summary>The attempts to run: from 0 on until <paramref name="kills"/> reaches Count (at most 3 x Count), or the one PEFT_KILL_CASE names.</summary>
    public static IEnumerable<int> Attempts(Func<int> kills)
    {
        if (OnlyCase is { } only)
        {
            yield return only;
            yield break;
        }
        for (int i = 0; i < 3 * Count && kills() < Count; i++) yield return i;
    }

    /// <summary>The generator of kill <paramref name="i"/>'s delay: the same for a given seed, kind and index.</summary>
    public static Random For(string kind, int i) => new(Seed(kind, i));

    /// <summary>
    /// A delay between <paramref name="span"/>/500 and <paramref name="span"/>, uniform in its logarithm: writes last from
    /// under a millisecond to a good part of the span, and every scale gets its share of kills.
    /// </summary>
    public static TimeSpan LogUniform(this Random random, double spanMs) => TimeSpan.FromMilliseconds(spanMs * Math.Exp(Math.Log(1.0 / 500) * random.NextDouble()));

    /// <summary>Kill <paramref name="i"/>'s seed (HashCode.Combine would differ between processes).</summary>
    public static int Seed(string kind, int i) => unchecked(BaseSeed * 1_000_003 + StableHash(kind) * 7919 + i);

    private static int StableHash(string text) => text.Aggregate(17, (h, c) => unchecked(h * 31 + c));

    private static int? Int(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
}
