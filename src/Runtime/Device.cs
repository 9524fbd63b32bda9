using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime;

/// <summary>Where a model runs. <see cref="Auto"/> tries CUDA and falls back to the CPU, saying so.</summary>
public enum Device
{
    Cpu,
    Cuda,
    Auto,
}

/// <summary>How <see cref="OnnxModel.Load(string, DeviceOptions?)"/> places the model.</summary>
public sealed record DeviceOptions
{
    /// <summary>cpu, cuda (fails when CUDA cannot start; never falls back) or auto (CUDA when it starts, else CPU).</summary>
    public Device Device { get; init; } = Device.Auto;

    /// <summary>CUDA device ordinal.</summary>
    public int CudaDeviceId { get; init; }

    /// <summary>ORT intra-op threads per session (null: ORT's default, one per physical core).</summary>
    public int? IntraOpThreads { get; init; }

    /// <summary>
    /// Whether ORT's idle intra-op threads spin while they wait for work (ORT's default) instead of sleeping. Off by
    /// default: a spinning pool wins a few microseconds per operator on an idle machine but takes whole cores from every
    /// other process, and on a busy one (more runnable threads than cores) it loses several times over.
    /// </summary>
    public bool AllowSpinning { get; init; }

    /// <summary>
    /// Whether the CUDA provider may run float32 matrix products in TF32 (10-bit mantissa). Off by default, so a CUDA
    /// run answers like the CPU's (logits within ~2e-5 on the fixtures); on, large models run faster on Ampere and
    /// later GPUs at ~1e-3 relative error.
    /// </summary>
    public bool AllowTf32 { get; init; }

    /// <summary>Where <see cref="Device.Auto"/> reports its choice (default: standard error; null: silent).</summary>
    public TextWriter? Report { get; init; } = Console.Error;

    public static DeviceOptions Cpu { get; } = new() { Device = Device.Cpu };
    public static DeviceOptions Cuda { get; } = new() { Device = Device.Cuda };
    public static DeviceOptions Auto { get; } = new() { Device = Device.Auto };

    /// <summary>"cpu", "cuda" or "auto".</summary>
    public static DeviceOptions Parse(string device) => device.Trim().ToLowerInvariant() switch
    {
        "cpu" => Cpu,
        "cuda" or "gpu" => Cuda,
        "auto" => Auto,
        _ => throw new PeftOnnxException($"device '{device}' is not one of cpu, cuda, auto"),
    };
}
