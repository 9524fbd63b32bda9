using System.Text.Json.Serialization;

namespace Peft.Onnx.Bench.Load;

/// <summary>
/// The RSS curve of a run in a few numbers: where it started, where it stood when warm-up ended, where it ended, its range
/// after warm-up and the least-squares slope over that part. <see cref="GrowthBytes"/> (slope x time after warm-up) is
/// what is judged: the curve saws up and down with the requests in flight, so a single late sample says little.
/// </summary>
/// <param name="EndBytes">The last sample of the load, before the drain.</param>
public sealed record RssTrend(
    [property: JsonPropertyName("start_bytes")] long StartBytes,
    [property: JsonPropertyName("warm_bytes")] long WarmBytes,
    [property: JsonPropertyName("end_bytes")] long EndBytes,
    [property: JsonPropertyName("min_after_warmup_bytes")] long MinAfterWarmupBytes,
    [property: JsonPropertyName("max_after_warmup_bytes")] long MaxAfterWarmupBytes,
    [property: JsonPropertyName("samples_after_warmup")] int SamplesAfterWarmup,
    [property: JsonPropertyName("slope_bytes_per_second")] double SlopeBytesPerSecond,
    [property: JsonPropertyName("growth_bytes")] long GrowthBytes,
    [property: JsonPropertyName("max_growth_bytes")] long MaxGrowthBytes,
    [property: JsonPropertyName("flat")] bool Flat)
{
    /// <summary>Fewest samples after warm-up that a slope is fitted to.</summary>
    public const int MinSamples = 3;

    /// <summary>
    /// The trend of <paramref name="samples"/> (time order) from <paramref name="warmupSeconds"/> to <paramref name="untilSeconds"/>
    /// (the end of the load: the drain after it would pull the slope down); flat when the fitted
    /// growth is at most <paramref name="maxGrowthBytes"/>. Fewer than <see cref="MinSamples"/> samples after warm-up
    /// cannot show a trend and are not flat.
    /// </summary>
    public static RssTrend Fit(IReadOnlyList<LoadSample> samples, double warmupSeconds, double untilSeconds, long maxGrowthBytes) =>
        Fit(samples.Select(s => (s.Seconds, s.RssBytes)).ToList(), warmupSeconds, untilSeconds, maxGrowthBytes);

    /// <summary>The same fit over the server's samples of a `load --url` run.</summary>
    public static RssTrend Fit(IReadOnlyList<ServerSample> samples, double warmupSeconds, double untilSeconds, long maxGrowthBytes) =>
        Fit(samples.Select(s => (s.Seconds, s.RssBytes)).ToList(), warmupSeconds, untilSeconds, maxGrowthBytes);

    private static RssTrend Fit(IReadOnlyList<(double Seconds, long RssBytes)> samples, double warmupSeconds, double untilSeconds, long maxGrowthBytes)
    {
        if (samples.Count == 0) throw new ArgumentException("no samples", nameof(samples));
        var warm = samples.Where(s => s.Seconds >= warmupSeconds && s.Seconds <= untilSeconds).ToList();
        if (warm.Count < MinSamples)
            return new RssTrend(samples[0].RssBytes, warm.Count > 0 ? warm[0].RssBytes : samples[^1].RssBytes, samples[^1].RssBytes,
                warm.Count > 0 ? warm.Min(s => s.RssBytes) : 0, warm.Count > 0 ? warm.Max(s => s.RssBytes) : 0, warm.Count, 0, 0, maxGrowthBytes, false);

        double meanT = warm.Average(s => s.Seconds), meanR = warm.Average(s => (double)s.RssBytes);
        double covariance = 0, variance = 0;
        foreach (var s in warm)
        {
            covariance += (s.Seconds - meanT) * (s.RssBytes - meanR);
            variance += (s.Seconds - meanT) * (s.Seconds - meanT);
        }
        double slope = variance > 0 ? covariance / variance : 0;
        long growth = (long)Math.Round(slope * (warm[^1].Seconds - warm[0].Seconds));
        return new RssTrend(samples[0].RssBytes, warm[0].RssBytes, warm[^1].RssBytes, warm.Min(s => s.RssBytes), warm.Max(s => s.RssBytes),
            warm.Count, slope, growth, maxGrowthBytes, growth <= maxGrowthBytes);
    }
}
