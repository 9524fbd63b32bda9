namespace Peft.Onnx.Core.SafeTensors;

/// <summary>Named tensors readable by name: one safetensors file or a sharded checkpoint.</summary>
public interface ITensorSource : IDisposable
{
    IEnumerable<string> Names { get; }
    bool Contains(string name);
    TensorEntry this[string name] { get; }
    ReadOnlySpan<byte> GetBytes(string name);
    float[] ReadFloat32(string name);
    long[] ReadInt64(string name);
}
