using System.Runtime.CompilerServices;

namespace Peft.Onnx.Tests.Support;

/// <summary>
/// Tests create TorchSharp tensors directly, possibly before any Trainer type has loaded, so the native
/// library patch must run when this assembly loads, not only when the Trainer's does.
/// </summary>
internal static class TorchNativeSetup
{
    [ModuleInitializer]
    internal static void Patch() => Peft.Onnx.Trainer.Native.LibTorchSharpPatch.PatchBesideApplication();
}
