namespace Peft.Onnx.Runtime.Adapters;

/// <summary>One stacked tensor's values, float32 row-major <see cref="Dims"/> (slots + 1 first: the base slot last).</summary>
internal sealed record StackBuffer(float[] Values, long[] Dims)
{
    public int Slots => checked((int)Dims[0]);
}
