namespace Peft.Onnx.Trainer.Training;

/// <summary>
/// What a `train --batch` run did: the loss before each step, the loss after the last one (eval mode), the adapter's
/// method and trainable parameter count, and the wall time from loading to saving.
/// </summary>
public sealed record OneBatchReport(IReadOnlyList<float> Losses, float? FinalLoss, string PeftType, long Trainable, double Seconds);
