namespace Peft.Onnx.Core.Architectures;

/// <summary>One tensor of a Hugging Face state dict: its name and shape as stored in model.safetensors.</summary>
public sealed record ParameterSpec(string Name, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}
