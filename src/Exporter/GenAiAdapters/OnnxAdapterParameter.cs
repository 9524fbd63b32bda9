namespace Peft.Onnx.Exporter.GenAiAdapters;

/// <summary>One float32 tensor of an <c>.onnx_adapter</c> file: the graph input it feeds, its shape, its values (row-major).</summary>
public sealed record OnnxAdapterParameter(string Name, long[] Dims, float[] Values)
{
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);
}
