using System.Globalization;
using Peft.Onnx.Core;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>
/// Hyper-parameters of a fine-tuning run, as the PEFT task guides use them: AdamW (torch defaults, weight decay 0.01)
/// with a linear warmup/decay schedule stepped every optimizer step, a seeded shuffle each epoch, optional gradient
/// accumulation and gradient clipping.
/// </summary>
public sealed record FinetuneOptions
{
    public double Lr { get; init; } = 1e-3;
    public int Epochs { get; init; } = 1;
    public int BatchSize { get; init; } = 8;
    public int GradientAccumulation { get; init; } = 1;
    public double? MaxGradNorm { get; init; }
    public int WarmupSteps { get; init; }
    public double WeightDecay { get; init; } = 0.01;
    public long Seed { get; init; } = 42;

    /// <summary>Generation for accuracy runs in batches of this many validation rows (the guides: 32).</summary>
    public int EvalBatchSize { get; init; } = 32;

    /// <summary>Stop after this many epochs in this process (a run cut short, e.g. to test --resume); null = all.</summary>
    public int? StopAfterEpoch { get; init; }

    public void Validate()
    {
        if (!(Lr > 0) || !double.IsFinite(Lr)) throw new PeftOnnxException($"--lr {Lr.ToString(CultureInfo.InvariantCulture)} must be a number > 0");
        if (Epochs < 1) throw new PeftOnnxException($"--epochs {Epochs} must be >= 1");
        if (BatchSize < 1) throw new PeftOnnxException($"--batch-size {BatchSize} must be >= 1");
        if (GradientAccumulation < 1) throw new PeftOnnxException($"--grad-accum {GradientAccumulation} must be >= 1");
        if (MaxGradNorm is { } g && !(g > 0)) throw new PeftOnnxException($"--max-grad-norm {g.ToString(CultureInfo.InvariantCulture)} must be > 0");
        if (WarmupSteps < 0) throw new PeftOnnxException($"--warmup-steps {WarmupSteps} must be >= 0");
        if (!(WeightDecay >= 0)) throw new PeftOnnxException($"weight decay {WeightDecay.ToString(CultureInfo.InvariantCulture)} must be >= 0");
    }

    /// <summary>Batches per epoch for a training set of <paramref name="rows"/> rows (the last one may be partial).</summary>
    public int BatchesPerEpoch(int rows) => (rows + BatchSize - 1) / BatchSize;

    /// <summary>Optimizer steps per epoch: one per <see cref="GradientAccumulation"/> batches, and one for a remainder at the epoch's end.</summary>
    public int StepsPerEpoch(int rows) => (BatchesPerEpoch(rows) + GradientAccumulation - 1) / GradientAccumulation;
}
