using System.Diagnostics;
using System.Globalization;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;
using static TorchSharp.torch;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>What a run reports while it goes (progress bars, logs). Every member may be a no-op.</summary>
public interface IFinetuneProgress
{
    void Started(int firstEpoch, int epochs, int batchesPerEpoch) { }
    void TrainBatch(int epoch, int batch, int batches, double loss, double lr) { }
    void Evaluating(int epoch, string phase, int done, int total) { }
    void EpochDone(EpochMetrics metrics) { }
    void Info(string line) { }
}

/// <summary>The tokenized splits and what evaluation needs to know about them.</summary>
public sealed record FinetuneData(
    IReadOnlyList<Example> Train, IReadOnlyList<Example> Validation, TaskKind Task, SpecialIds Ids,
    IReadOnlyList<string> LabelSet, int MaxNewTokens, int UnknownValidationLabels);

/// <summary>The end of a run: every epoch's metrics (resumed ones included) and whether all epochs ran.</summary>
public sealed record FinetuneResult(IReadOnlyList<EpochMetrics> Epochs, bool Completed, int ResumedFromEpoch);

/// <summary>
/// The PEFT task guides' training loop: each epoch visits the training split in a seeded permutation, in batches
/// (optionally accumulating gradients over several), clips the gradient norm when asked, steps AdamW and the linear
/// warmup/decay schedule; then measures the validation loss and generation accuracy, appends a record to
/// metrics.jsonl and writes a checkpoint. The final adapter goes to the output folder in PEFT's format.
/// </summary>
public sealed class FinetuneRun
{
    public const string MetricsFile = "metrics.jsonl";

    private readonly PeftModel _model;
    private readonly HfTokenizer _tokenizer;
    private readonly FinetuneData _data;
    private readonly FinetuneOptions _options;
    private readonly string _outDir;
    private readonly IReadOnlyDictionary<string, string> _settings;

    public FinetuneRun(PeftModel model, HfTokenizer tokenizer, FinetuneData data, FinetuneOptions options, string outDir,
        IReadOnlyDictionary<string, string>? settings = null)
    {
        options.Validate();
        if (data.Train.Count == 0) throw new PeftOnnxException("training split is empty");
        _model = model;
        _tokenizer = tokenizer;
        _data = data;
        _options = options;
        _outDir = outDir;
        _settings = settings ?? new Dictionary<string, string>();
    }

    public int StepsPerEpoch => _options.StepsPerEpoch(_data.Train.Count);
    public int TotalSteps => StepsPerEpoch * _options.Epochs;

    public FinetuneResult Run(bool resume, IFinetuneProgress? progress = null)
    {
        progress ??= new NoProgress();
        Directory.CreateDirectory(_outDir);
        // A run killed earlier (kill -9) may have left hidden staging folders and temp files: removed, or a replaced
        // checkpoint put back, before anything is read.
        AtomicFolder.RemoveLeftoversIn(Path.Combine(_outDir, FinetuneCheckpoint.Folder));
        AtomicFolder.RemoveLeftoversIn(_outDir);
        var trainable = _model.Tuner.TrainableParameters;
        foreach (var (_, p) in trainable) if (!p.requires_grad) p.requires_grad_(true);
        using var optimizer = new AdamW(trainable, new AdamWOptions(_options.Lr, WeightDecay: _options.WeightDecay));
        var schedule = new LinearWarmupSchedule(_options.Lr, _options.WarmupSteps, TotalSteps);
        var shuffle = SeededRandom.FromSeed(_options.Seed);
        var metrics = new List<EpochMetrics>();
        long step = 0;
        int firstEpoch = 1;

        if (resume && FinetuneCheckpoint.Latest(_outDir) is { } checkpoint)
        {
            var state = FinetuneCheckpoint.ReadState(checkpoint);
            CheckSettings(state, checkpoint);
            FinetuneCheckpoint.Restore(checkpoint, _model, optimizer);
            step = state.SchedulerStep;
            shuffle = new SeededRandom(ulong.Parse(state.ShuffleRngState, CultureInfo.InvariantCulture));
            metrics.AddRange(state.Metrics);
            firstEpoch = state.Epoch + 1;
            EpochMetrics.WriteAll(Path.Combine(_outDir, MetricsFile), metrics);
            progress.Info($"resuming after epoch {state.Epoch} from {checkpoint} (optimizer step {step})");
        }
        else if (resume) progress.Info($"--resume: no checkpoint in {Path.Combine(_outDir, FinetuneCheckpoint.Folder)}; starting from epoch 1");
        else if (FinetuneCheckpoint.Latest(_outDir) is not null)
        {
            // A fresh run owns the folder: stale checkpoints of an older run must not be resumed later.
            // Renamed aside before it is deleted: a kill mid-way must not leave half-deleted checkpoints that look complete.
            AtomicFolder.Delete(Path.Combine(_outDir, FinetuneCheckpoint.Folder));
        }

        int batches = _options.BatchesPerEpoch(_data.Train.Count);
        progress.Started(firstEpoch, _options.Epochs, batches);
        bool completed = true;
        for (int epoch = firstEpoch; epoch <= _options.Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            var (trainLoss, lastLr) = TrainEpoch(epoch, optimizer, schedule, shuffle, ref step, progress);
            var trainSeconds = clock.Elapsed.TotalSeconds;

            var evalClock = Stopwatch.StartNew();
            var evalLoss = Evaluation.Loss(_model, _data.Validation, _data.Task, _data.Ids.Pad, _options.BatchSize,
                (d, t) => progress.Evaluating(epoch, "eval loss", d, t));
            var accuracy = Evaluation.Accuracy(_model, _tokenizer, _data.Validation, _data.Task, _data.Ids, _data.MaxNewTokens,
                _data.LabelSet, _options.EvalBatchSize, (d, t) => progress.Evaluating(epoch, "generate", d, t));
            var record = new EpochMetrics
            {
                Epoch = epoch,
                TrainLoss = trainLoss,
                TrainPpl = Math.Exp(trainLoss),
                EvalLoss = evalLoss,
                EvalPpl = Math.Exp(evalLoss),
                EvalAccuracy = accuracy.Accuracy,
                EvalCorrect = accuracy.Correct,
                EvalRows = accuracy.Rows,
                Predictions = accuracy.Predictions,
                OtherExamples = accuracy.OtherExamples,
                UnknownLabels = _data.UnknownValidationLabels,
                TrainSeconds = Math.Round(trainSeconds, 3),
                EvalSeconds = Math.Round(evalClock.Elapsed.TotalSeconds, 3),
                Seconds = Math.Round(clock.Elapsed.TotalSeconds, 3),
                Lr = lastLr,
                OptimizerSteps = step,
            };
            metrics.Add(record);
            EpochMetrics.WriteAll(Path.Combine(_outDir, MetricsFile), metrics);
            FinetuneCheckpoint.Save(_outDir, _model, optimizer, new CheckpointState
            {
                Epoch = epoch,
                OptimizerSteps = step,
                SchedulerStep = step,
                ShuffleRngState = shuffle.State.ToString(CultureInfo.InvariantCulture),
                Settings = _settings.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal),
                Metrics = [.. metrics],
            });
            progress.EpochDone(record);
            if (_options.StopAfterEpoch is { } stop && epoch >= stop && epoch < _options.Epochs)
            {
                completed = false;
                break;
            }
        }
        if (completed) _model.Save(_outDir);
        return new FinetuneResult(metrics, completed, firstEpoch - 1);
    }

    private (double Loss, double Lr) TrainEpoch(int epoch, Optimizer optimizer, LinearWarmupSchedule schedule, SeededRandom shuffle,
        ref long step, IFinetuneProgress progress)
    {
        var order = shuffle.Permutation(_data.Train.Count);
        int batches = _options.BatchesPerEpoch(order.Length);
        int accum = _options.GradientAccumulation;
        double sum = 0;
        double lr = schedule.LearningRate(step);
        var parameters = optimizer.Parameters.Select(p => p.Parameter).ToList();
        _model.Base.Training = true;
        try
        {
            optimizer.ZeroGrad();
            for (int b = 0; b < batches; b++)
            {
                var rows = order.Skip(b * _options.BatchSize).Take(_options.BatchSize).Select(i => _data.Train[i]).ToList();
                var batch = BatchCollator.Collate(rows, _data.Task, _data.Ids.Pad);
                double value;
                using (var scope = NewDisposeScope())
                {
                    var loss = ForwardPass.Forward(_model, tensor(batch.InputIds, batch.Shape), tensor(batch.AttentionMask, batch.Shape),
                        tensor(batch.Labels, batch.LabelShape)).Loss
                        ?? throw new PeftOnnxException("the model returned no loss for a batch with labels");
                    value = loss.to(float64).item<double>();
                    if (!double.IsFinite(value)) throw new PeftOnnxException($"epoch {epoch}, batch {b + 1}: the loss is {value} (diverged; try a lower --lr)");
                    (accum == 1 ? loss : loss.Over(accum)).backward();
                }
                sum += value;
                // The last group of an epoch may be short: its gradients are still applied (no carry-over across epochs).
                if ((b + 1) % accum == 0 || b == batches - 1)
                {
                    if (_options.MaxGradNorm is { } maxNorm) GradientClipping.ClipGradNorm(parameters, maxNorm);
                    lr = schedule.LearningRate(step);
                    optimizer.Lr = lr;
                    optimizer.Step();
                    optimizer.ZeroGrad();
                    step++;
                }
                progress.TrainBatch(epoch, b + 1, batches, value, lr);
            }
        }
        finally { _model.Base.Training = false; }
        return (sum / batches, lr);
    }

    private void CheckSettings(CheckpointState state, string checkpoint)
    {
        var changed = _settings.Keys.Union(state.Settings.Keys)
            .Where(k => _settings.GetValueOrDefault(k) != state.Settings.GetValueOrDefault(k))
            .Order(StringComparer.Ordinal).ToList();
        if (changed.Count > 0)
        {
            var k = changed[0];
            throw new PeftOnnxException($"--resume: {checkpoint} was written with other settings ({string.Join(", ", changed)} differ; e.g. {k}: checkpoint '{state.Settings.GetValueOrDefault(k)}', now '{_settings.GetValueOrDefault(k)}'); rerun with the same options or a new --out");
        }
    }

    private sealed class NoProgress : IFinetuneProgress { }
}
