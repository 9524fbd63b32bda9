using System.Runtime.CompilerServices;

namespace Peft.Onnx.Cli;

/// <summary>Patches libLibTorchSharp.so before any verb can reach TorchSharp (see LibTorchSharpPatch).</summary>
internal static class TorchNativeSetup
{
    [ModuleInitializer]
    internal static void Patch() => Peft.Onnx.Trainer.Native.LibTorchSharpPatch.PatchBesideApplication();
}
