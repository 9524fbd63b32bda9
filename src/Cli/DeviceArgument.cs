using Peft.Onnx.Runtime;

namespace Peft.Onnx.Cli;

/// <summary>--device (and --tf32 for an ONNX Runtime model): one reading for every verb that computes.</summary>
public static class DeviceArgument
{
    /// <summary>
    /// --device cpu|cuda|auto (default auto) and --tf32 (let CUDA run float32 products in TF32: faster on large
    /// models, ~1e-3 relative error; off by default so CUDA answers like the CPU).
    /// </summary>
    public static DeviceOptions Read(ArgReader args) =>
        DeviceOptions.Parse(Choice(args)) with { AllowTf32 = args.Flag("tf32") };

    /// <summary>--device cpu|cuda|auto (default auto) as given: TorchSharp resolves the name itself.</summary>
    public static string Choice(ArgReader args) => args.Choice("device", "auto", "cpu", "cuda", "auto");
}
