namespace Peft.Onnx.Trainer.Finetune;

/// <summary>
/// Runs the training part of a job with a progress sink; a live display (progress bars) exists only for that long,
/// so the job's log lines before and after it stay intact.
/// </summary>
public delegate FinetuneResult FinetuneProgressHost(Func<IFinetuneProgress, FinetuneResult> training);
