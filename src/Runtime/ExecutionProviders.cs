using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime;

/// <summary>
/// Session options per device. CUDA needs the NVIDIA driver, CUDA 13 (runtime, cuBLAS, cuRAND) and cuDNN 9 where
/// the dynamic loader finds them; each is probed by name first so a failure names the missing library instead of
/// ORT's generic message.
/// </summary>
internal static class ExecutionProviders
{
    private static readonly (string Library, string What)[] CudaLibraries =
    [
        ("libcuda.so.1", "the NVIDIA driver"),
        ("libcudart.so.13", "the CUDA 13 runtime"),
        ("libcublas.so.13", "cuBLAS for CUDA 13"),
        ("libcublasLt.so.13", "cuBLASLt for CUDA 13"),
        ("libcurand.so.10", "cuRAND for CUDA 13"),
        ("libcudnn.so.9", "cuDNN 9"),
    ];

    /// <summary>Null when every CUDA library loads; else why CUDA cannot start, in one line.</summary>
    public static string? MissingCudaLibrary()
    {
        if (!OperatingSystem.IsLinux()) return "the CUDA execution provider of this build needs Linux x64";
        foreach (var (library, what) in CudaLibraries)
            if (!NativeLibrary.TryLoad(library, out _))
                return $"{library} ({what}) cannot be loaded; install it and add its folder to LD_LIBRARY_PATH";
        return null;
    }

    public static SessionOptions Create(Device device, DeviceOptions options)
    {
        var o = new SessionOptions
        {
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        if (options.IntraOpThreads is { } threads) o.IntraOpNumThreads = threads;
        if (!options.AllowSpinning)
        {
            o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            o.AddSessionConfigEntry("session.inter_op.allow_spinning", "0");
        }
        if (device == Device.Cuda)
        {
            try
            {
                // ORT's CUDA provider runs float32 MatMuls/convolutions in TF32 unless told not to: measured on an
                // H100, logits then differed from the CPU's by up to 2e-3 (3e-2 on mT5) instead of 2e-5, beyond the
                // 1e-4 that compare and the fixtures hold an export to. PyTorch's default is likewise TF32 off.
                using var cuda = new OrtCUDAProviderOptions();
                cuda.UpdateOptions(new Dictionary<string, string>
                {
                    ["device_id"] = options.CudaDeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["use_tf32"] = options.AllowTf32 ? "1" : "0",
                });
                o.AppendExecutionProvider_CUDA(cuda);
            }
            catch (Exception ex) when (ex is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
            {
                o.Dispose();
                throw CudaFailure(ex);
            }
        }
        return o;
    }

    public static PeftOnnxException CudaFailure(Exception ex) =>
        new($"cuda: the CUDA execution provider cannot start: {ex.Message.Split('\n')[0].Trim()}", ex);
}
