namespace Peft.Onnx.Trainer.Finetune;

/// <summary>
/// transformers' get_linear_schedule_with_warmup: lr(step) = base * step / max(1, warmup) while step &lt; warmup, then
/// base * max(0, (total - step) / max(1, total - warmup)). Step n (0-based) is the n-th optimizer step; the
/// scheduler is stepped after every optimizer step, so step n uses <see cref="LearningRate"/>(n).
/// </summary>
public sealed record LinearWarmupSchedule(double BaseLr, int WarmupSteps, int TotalSteps)
{
    public double Factor(long step)
    {
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        return Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps));
    }

    public double LearningRate(long step) => BaseLr * Factor(step);
}
