using System.Runtime.InteropServices;
using Xunit;

namespace Peft.Onnx.Tests.Support;

/// <summary>
/// A fact about what happens where CUDA cannot start. On a host where it can (the driver, the CUDA 13 runtime and
/// cuDNN 9 load), or in a run that says it expects CUDA (PEFT_ONNX_EXPECT_CUDA=1), the test is reported as skipped
/// with the reason, never passed without checking anything.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class FactWhereCudaCannotStartAttribute : FactAttribute
{
    private static readonly string[] CudaLibraries = ["libcuda.so.1", "libcudart.so.13", "libcudnn.so.9"];

    public FactWhereCudaCannotStartAttribute()
    {
        if (Environment.GetEnvironmentVariable("PEFT_ONNX_EXPECT_CUDA") == "1")
            Skip = "PEFT_ONNX_EXPECT_CUDA=1: this run expects CUDA to start";
        else if (CudaLibraries.All(Loads))
            Skip = $"CUDA can start on this host ({string.Join(", ", CudaLibraries)} load)";
    }

    private static bool Loads(string library)
    {
        if (!NativeLibrary.TryLoad(library, out var handle)) return false;
        NativeLibrary.Free(handle);
        return true;
    }
}
