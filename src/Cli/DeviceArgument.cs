using Peft.Onnx.Runtime;

namespace Peft.Onnx.Cli;

/// <summary>The options that place an ONNX Runtime model, shared by every verb that serves one.</summary>
public static class DeviceArgument
{
    /// <summary>
    /// --device cpu|cuda|auto (default auto) and --tf32 (let CUDA run float32 products in TF32: faster on large
    /// models, ~1e-3 relative error; off by default so CUDA answers like the CPU).
    /// </summary>
    public static DeviceOptions Read(ArgReader args) =>
        DeviceOptions.Parse(args.Choice("device", "auto", "cpu", "cuda", "auto")) with { AllowTf32 = args.Flag("tf32") };
}
