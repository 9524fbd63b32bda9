using Peft.Onnx.Core;
using ScottPlot;

namespace Peft.Onnx.Verification;

/// <summary>A PNG histogram (ScottPlot 5) of |adapted - onnx| logit differences, log10 scale on x so 1e-7 and 1e-3 both show.</summary>
public static class DiffHistogram
{
    public static void Write(string path, float[] differences, double tolerance, string title, int bins = 40)
    {
        if (differences.Length == 0) return;
        const double floor = 1e-9;
        var logs = differences.Select(d => Math.Log10(Math.Max(floor, float.IsFinite(d) ? d : 1e9))).ToArray();
        double lo = logs.Min(), hi = Math.Max(logs.Max(), Math.Log10(tolerance));
        if (hi - lo < 1e-6) hi = lo + 1;
        double width = (hi - lo) / bins;
        var counts = new double[bins];
        foreach (var v in logs) counts[Math.Min(bins - 1, (int)((v - lo) / width))]++;
        var plot = new Plot();
        var positions = Enumerable.Range(0, bins).Select(i => lo + (i + 0.5) * width).ToArray();
        var bars = plot.Add.Bars(positions, counts);
        foreach (var bar in bars.Bars) bar.Size = width * 0.95;
        var line = plot.Add.VerticalLine(Math.Log10(tolerance));
        line.LegendText = $"tolerance {tolerance:G3}";
        line.LinePattern = LinePattern.Dashed;
        plot.Axes.Bottom.Label.Text = "log10 |adapted - onnx| logit difference";
        plot.Axes.Left.Label.Text = "logits";
        plot.Title(title);
        plot.ShowLegend(Alignment.UpperRight);
        var bytes = plot.GetImage(800, 500).GetImageBytes(ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, bytes);
    }
}
