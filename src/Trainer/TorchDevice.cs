using System.Reflection;
using Peft.Onnx.Core;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer;

/// <summary>Resolves --device for TorchSharp work: explicit cpu/cuda, or auto (CUDA when this build and machine have it).</summary>
public static class TorchDevice
{
    /// <summary>"cpu" or "cuda": which libtorch this build references (-p:TorchDevice).</summary>
    public static string BuildFlavour =>
        typeof(TorchDevice).Assembly.GetCustomAttribute<TorchBuildAttribute>()?.Device ?? "cpu";

    public static Device Resolve(string choice, Action<string>? report = null)
    {
        switch (choice)
        {
            case "cpu":
                return CPU;
            case "cuda":
                if (BuildFlavour != "cuda")
                    throw new PeftOnnxException("--device cuda: this build of peft-onnx references the CPU libtorch (libtorch-cpu-linux-x64); rebuild with -p:TorchDevice=cuda where a package source has TorchSharp-cuda-linux");
                if (!cuda.is_available())
                    throw new PeftOnnxException("--device cuda: libtorch cannot start CUDA here (no GPU visible, or the CUDA driver/libraries are missing)");
                return CUDA;
            case "auto":
                var chosen = BuildFlavour == "cuda" && cuda.is_available() ? CUDA : CPU;
                report?.Invoke($"device: {chosen.type.ToString().ToLowerInvariant()} (auto)");
                return chosen;
            default:
                throw new PeftOnnxException($"--device: '{choice}' is not a device (expected cpu, cuda or auto)");
        }
    }
}
