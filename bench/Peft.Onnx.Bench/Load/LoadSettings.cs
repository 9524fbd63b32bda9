using Peft.Onnx.Runtime;

namespace Peft.Onnx.Bench.Load;

/// <summary>What one `load` run does: the folder, how many requests at once and for how long, their sizes, and the pass limits.</summary>
/// <param name="Prompts">Distinct prompts; every request takes one of them, so each has a known sequential answer.</param>
/// <param name="CancelFraction">Share of requests cancelled while they generate.</param>
/// <param name="WarmupFraction">Leading share of the run left out of the RSS trend (arenas and pools fill up first).</param>
/// <param name="MaxRssGrowthBytes">Most RSS growth after warm-up (fitted slope x time) that still counts as flat.</param>
/// <param name="CancelDeadlineSeconds">Longest time from a cancel to the request's end that still counts as prompt.</param>
/// <param name="ForceGc">A full GC before each sample (see <see cref="ResourceSampler"/>); false leaves the GC to its own pace.</param>
public sealed record LoadSettings(
    string Dir, DeviceOptions Device, int Concurrency, double DurationSeconds, int PromptLength, int NewTokens, int Prompts,
    double CancelFraction, double SampleIntervalSeconds, double WarmupFraction, long MaxRssGrowthBytes, double CancelDeadlineSeconds, int Seed, bool ForceGc)
{
    public double WarmupSeconds => DurationSeconds * WarmupFraction;
}
