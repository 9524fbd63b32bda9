namespace Peft.Onnx.Server.Scheduling;

/// <param name="MaxBatchSize">Rows stepped together at most.</param>
/// <param name="MaxQueue">Jobs waiting at most; one more is refused.</param>
public sealed record SchedulerLimits(int MaxBatchSize, int MaxQueue);
