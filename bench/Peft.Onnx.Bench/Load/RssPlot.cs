using Peft.Onnx.Core;
using ScottPlot;

namespace Peft.Onnx.Bench.Load;

/// <summary>rss.png: RSS and managed heap (left axis, MB) and tokens/s (right axis) over the run, the end of warm-up marked, drawn with ScottPlot 5.</summary>
public static class RssPlot
{
    public static void Write(string path, LoadReport report)
    {
        var samples = report.Samples;
        if (samples.Count == 0) return;
        var plot = new Plot();
        double[] x = samples.Select(s => s.Seconds).ToArray();
        var rss = plot.Add.Scatter(x, samples.Select(s => s.RssBytes / 1048576.0).ToArray());
        rss.LegendText = "RSS (MB)";
        var managed = plot.Add.Scatter(x, samples.Select(s => s.ManagedHeapBytes / 1048576.0).ToArray());
        managed.LegendText = "managed heap (MB)";
        var rate = plot.Add.Scatter(x, samples.Select(s => s.TokensPerSecond).ToArray());
        rate.LegendText = "tokens/s";
        rate.LinePattern = LinePattern.Dotted;
        rate.MarkerSize = 0;
        var right = plot.Axes.Right;
        rate.Axes.YAxis = right;
        right.Label.Text = "tokens/s";
        var warm = plot.Add.VerticalLine(report.WarmupSeconds);
        warm.LinePattern = LinePattern.Dashed;
        warm.LegendText = "end of warm-up";
        plot.Axes.Left.Label.Text = "MB";
        plot.Axes.Bottom.Label.Text = "seconds";
        var top = samples.Max(s => s.RssBytes) / 1048576.0;
        plot.Axes.SetLimitsY(0, top * 1.15, plot.Axes.Left);
        plot.Title($"load: {report.Concurrency} concurrent, RSS {report.Rss.SlopeBytesPerSecond / 1048576.0 * 60:+0.00;-0.00} MB/min after warm-up ({(report.Rss.Flat ? "flat" : "growing")})");
        plot.ShowLegend(Alignment.LowerRight);
        AtomicFile.WriteAllBytes(path, plot.GetImage(900, 500).GetImageBytes(ImageFormat.Png));
    }
}
