namespace Peft.Onnx.Core.Onnx;

/// <summary>
/// Where a stacked adapter tensor of a multi-adapter export lies in its external data file (float32, row-major
/// <see cref="Dims"/>, the first dim the slots): recorded in adapters.json so that the Runtime can read the stacks
/// without parsing the graph, and feed grown copies of them (graph inputs whose defaults these bytes are).
/// </summary>
public sealed record AdapterStackTensor(string Name, string Location, long Offset, long Length, long[] Dims)
{
    public long ElementCount => Dims.Aggregate(1L, (a, d) => a * d);
}
