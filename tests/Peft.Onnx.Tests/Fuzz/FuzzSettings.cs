using System.Globalization;

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

    /// <summary>
    /// The least share of a run's inputs that must parse: a mutator whose every output is rejected tests only the
    /// first check of a parser. Measured with the default seed: 6 % (vocab.json + merges.txt) to 45 % (csv).
    /// </summary>
    public const double MinAcceptedFraction = 0.01;

    /// <summary>Runs shorter than this are not held to <see cref="MinAcceptedFraction"/>: a few inputs may all be rejected by chance.</summary>
    public const int MinInputsToJudgeAcceptance = 200;

    /// <summary>Bytes one input may allocate: generous for real files, far below what an unchecked length would ask for.</summary>
    public static long AllocationBudget(long inputBytes) => 512L * 1024 * 1024 + 64 * inputBytes;

    private static int? Int(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
}
