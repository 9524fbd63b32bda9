namespace Peft.Onnx.Trainer.Training;

/// <summary>
/// `train --batch`: the adapter to start from (a saved one in <see cref="AdapterDir"/>, or a new one from the
/// adapter_config.json at <see cref="ConfigPath"/>: exactly one), the batch file, the steps and optimizer, where the
/// adapter goes, the seed (a new adapter's weights; also seeds dropout when continuing a saved one) and the device.
/// </summary>
public sealed record OneBatchRequest
{
    public required string BaseDir { get; init; }
    public string? AdapterDir { get; init; }
    public string? ConfigPath { get; init; }
    public required string OutDir { get; init; }
    public required string BatchPath { get; init; }
    public required int Steps { get; init; }
    public required OptimizerSettings Optimizer { get; init; }
    public int? Seed { get; init; }
    public string Device { get; init; } = "auto";
}
