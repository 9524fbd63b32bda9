using System.Text.Json.Serialization;

namespace Peft.Onnx.Bench.Load;

/// <summary>
/// `load --compare-url B --url A`: the same HTTP load on two running servers one after the other, the baseline (B)
/// first, with the same prompts, clients and duration; <see cref="Ratio"/> is A's tokens/s over B's. Passes when
/// both runs pass (every answer equal to the sequential one, no error, prompt cancels, flat server RSS).
/// </summary>
public sealed record ServeComparison
{
    [JsonPropertyName("baseline")] public required HttpLoadReport Baseline { get; init; }
    [JsonPropertyName("measured")] public required HttpLoadReport Measured { get; init; }
    [JsonPropertyName("ratio")] public double Ratio { get; init; }
    [JsonPropertyName("passed")] public bool Passed { get; init; }

    public static ServeComparison Run(LoadSettings s, Uri baseline, Uri measured, TextWriter log) =>
        RunAsync(s, baseline, measured, log).GetAwaiter().GetResult();

    public static async Task<ServeComparison> RunAsync(LoadSettings s, Uri baseline, Uri measured, TextWriter log)
    {
        var references = HttpLoadRunner.References(s, log);
        var first = await HttpLoadRunner.DriveAsync(s, baseline, references, log).ConfigureAwait(false);
        var second = await HttpLoadRunner.DriveAsync(s, measured, references, log).ConfigureAwait(false);
        return new ServeComparison
        {
            Baseline = first,
            Measured = second,
            Ratio = first.TokensPerSecond > 0 ? Math.Round(second.TokensPerSecond / first.TokensPerSecond, 2) : 0,
            Passed = first.Passed && second.Passed,
        };
    }
}
