using Peft.Onnx.Core;
using ScottPlot;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>loss.png: train and eval loss (left axis) and eval accuracy (right axis, 0..1) per epoch, drawn with ScottPlot 5.</summary>
public static class LossPlot
{
    public static void Write(string path, IReadOnlyList<EpochMetrics> epochs, string title)
    {
        if (epochs.Count == 0) return;
        var plot = new Plot();
        double[] x = epochs.Select(e => (double)e.Epoch).ToArray();
        var train = plot.Add.Scatter(x, epochs.Select(e => e.TrainLoss).ToArray());
        train.LegendText = "train loss";
        var eval = plot.Add.Scatter(x, epochs.Select(e => e.EvalLoss).ToArray());
        eval.LegendText = "eval loss";
        var accuracy = plot.Add.Scatter(x, epochs.Select(e => e.EvalAccuracy).ToArray());
        accuracy.LegendText = "eval accuracy";
        accuracy.LinePattern = LinePattern.Dashed;
        var right = plot.Axes.Right;
        accuracy.Axes.YAxis = right;
        right.Label.Text = "accuracy";
        plot.Axes.SetLimitsY(0, 1, right);
        plot.Axes.Left.Label.Text = "loss";
        plot.Axes.Bottom.Label.Text = "epoch";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(1);
        plot.Title(title);
        plot.ShowLegend(Alignment.UpperRight);
        var bytes = plot.GetImage(800, 500).GetImageBytes(ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, bytes);
    }
}
