using System.Diagnostics;
using System.Globalization;
using Peft.Onnx.Trainer.Finetune;
using Spectre.Console;

namespace Peft.Onnx.Cli.Finetune;

/// <summary>
/// Training progress on stderr (stdout stays free for --json): Spectre.Console bars with the running loss and the
/// time left when stderr is a terminal, plain lines (about ten per epoch) when it is redirected.
/// </summary>
public static class ConsoleProgress
{
    public static T Run<T>(Func<IFinetuneProgress, T> body)
    {
        if (Console.IsErrorRedirected) return body(new PlainLines(Console.Error));
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx => body(new Bars(ctx, console)));
    }

    private static string Num(double v) => v.ToString(Math.Abs(v) < 1e-3 && v != 0 ? "0.00e+0" : "0.0000", CultureInfo.InvariantCulture);

    internal static string EpochLine(EpochMetrics m) =>
        $"epoch {m.Epoch}: train_loss {Num(m.TrainLoss)} train_ppl {Num(m.TrainPpl)} eval_loss {Num(m.EvalLoss)} eval_ppl {Num(m.EvalPpl)} " +
        $"eval_accuracy {m.EvalAccuracy.ToString("0.0000", CultureInfo.InvariantCulture)} ({m.EvalCorrect}/{m.EvalRows}; " +
        string.Join(", ", m.Predictions.Select(kv => $"{kv.Key} {kv.Value}")) + $") {m.TrainSeconds:F1}+{m.EvalSeconds:F1} s";

    private sealed class Bars(ProgressContext ctx, IAnsiConsole console) : IFinetuneProgress
    {
        private ProgressTask? _train, _eval;
        private int _epochs;
        private double _lossSum;
        private int _lossCount;

        public void Started(int firstEpoch, int epochs, int batchesPerEpoch) => _epochs = epochs;

        public void TrainBatch(int epoch, int batch, int batches, double loss, double lr)
        {
            if (_train is null || batch == 1)
            {
                _train?.StopTask();
                _train = ctx.AddTask($"epoch {epoch}/{_epochs} train", maxValue: batches);
                _lossSum = 0;
                _lossCount = 0;
            }
            _lossSum += loss;
            _lossCount++;
            _train.Description = $"epoch {epoch}/{_epochs} train loss {Num(_lossSum / _lossCount)} lr {lr.ToString("0.00e+0", CultureInfo.InvariantCulture)}";
            _train.Value = batch;
        }

        public void Evaluating(int epoch, string phase, int done, int total)
        {
            if (_eval is null || done == 1)
            {
                _eval?.StopTask();
                _eval = ctx.AddTask($"epoch {epoch}/{_epochs} {phase}", maxValue: total);
            }
            _eval.Value = done;
        }

        public void EpochDone(EpochMetrics metrics)
        {
            _train?.StopTask();
            _eval?.StopTask();
            _train = _eval = null;
            console.MarkupLine(Markup.Escape(EpochLine(metrics)));
        }

        public void Info(string line) => console.MarkupLine(Markup.Escape(line));
    }

    private sealed class PlainLines(TextWriter writer) : IFinetuneProgress
    {
        private readonly Stopwatch _epochClock = new();
        private int _epochs;
        private double _lossSum;
        private int _lossCount;

        public void Started(int firstEpoch, int epochs, int batchesPerEpoch) => _epochs = epochs;

        public void TrainBatch(int epoch, int batch, int batches, double loss, double lr)
        {
            if (batch == 1) { _epochClock.Restart(); _lossSum = 0; _lossCount = 0; }
            _lossSum += loss;
            _lossCount++;
            int every = Math.Max(1, batches / 10);
            if (batch % every != 0 && batch != batches) return;
            var elapsed = _epochClock.Elapsed.TotalSeconds;
            var eta = elapsed / batch * (batches - batch);
            writer.WriteLine($"epoch {epoch}/{_epochs} batch {batch}/{batches} loss {Num(_lossSum / _lossCount)} lr {lr.ToString("0.00e+0", CultureInfo.InvariantCulture)} elapsed {elapsed:F1} s eta {eta:F1} s");
        }

        public void Evaluating(int epoch, string phase, int done, int total)
        {
            if (done == total) writer.WriteLine($"epoch {epoch}/{_epochs} {phase}: {total} batch(es) done");
        }

        public void EpochDone(EpochMetrics metrics) => writer.WriteLine(EpochLine(metrics));

        public void Info(string line) => writer.WriteLine(line);
    }
}
