using System.Globalization;
using System.Text;

namespace Peft.Onnx.Server.Metrics;

/// <summary>A Prometheus histogram (cumulative buckets, sum, count); the owner serializes access.</summary>
internal sealed class Histogram(double[] bounds)
{
    private readonly long[] _counts = new long[bounds.Length];
    private double _sum;
    private long _count;

    public void Observe(double value)
    {
        for (int i = 0; i < bounds.Length; i++)
            if (value <= bounds[i]) _counts[i]++;
        _sum += value;
        _count++;
    }

    public void Write(StringBuilder s, string name, string help)
    {
        s.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} histogram\n");
        for (int i = 0; i < bounds.Length; i++)
            s.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{bounds[i]}\"}} {_counts[i]}\n");
        s.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"+Inf\"}} {_count}\n");
        s.Append(CultureInfo.InvariantCulture, $"{name}_sum {_sum}\n{name}_count {_count}\n");
    }
}
