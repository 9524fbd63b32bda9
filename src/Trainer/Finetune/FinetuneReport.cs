namespace Peft.Onnx.Trainer.Finetune;

/// <summary>What a `train --data` job did: the run's epochs, the adapter's type and size, the data's rows and labels.</summary>
public sealed record FinetuneReport(FinetuneResult Run, string PeftType, long Trainable, int TrainRows, int ValidationRows,
    IReadOnlyList<string> Labels, double Seconds);
