namespace Peft.Onnx.Core.SafeTensors;

/// <summary>One header entry: where a tensor's bytes lie, relative to the start of the data area.</summary>
public sealed record TensorEntry(string Name, DType DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => End - Begin;
}
