namespace Peft.Onnx.Trainer;

/// <summary>Which libtorch flavour this build references ("cpu" or "cuda"), set by -p:TorchDevice.</summary>
[AttributeUsage(AttributeTargets.Assembly)]
public sealed class TorchBuildAttribute(string device) : Attribute
{
    public string Device { get; } = device;
}
