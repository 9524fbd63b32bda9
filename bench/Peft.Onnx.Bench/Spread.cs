namespace Peft.Onnx.Bench;

/// <summary>Median, extremes and quartiles of a few timed rounds (linear interpolation between order statistics, as numpy's default).</summary>
public sealed record Spread(double Median, double Min, double Max, double Q1, double Q3)
{
    public static Spread Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return new Spread(double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);
        return new Spread(Quantile(sorted, 0.5), sorted[0], sorted[^1], Quantile(sorted, 0.25), Quantile(sorted, 0.75));
    }

    private static double Quantile(double[] sorted, double q)
    {
        double position = q * (sorted.Length - 1);
        int low = (int)Math.Floor(position);
        int high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }
}
