namespace Peft.Onnx.Runtime.Adapters;

/// <summary>
/// One stacked tensor's values, float32 row-major <see cref="Dims"/>: slots + 1 first (the base slot last), except the
/// row layout's LoRA A and B, whose first dim is their rows (see <see cref="Core.Onnx.LoraStackLayout.Rows"/>).
/// </summary>
internal sealed record StackBuffer(float[] Values, long[] Dims)
{
    public int Slots => checked((int)Dims[0]);
}
