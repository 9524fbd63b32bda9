using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter;

/// <summary>Where a multi-adapter export's stacked tensors landed in the data file, as adapters.json records them for the Runtime.</summary>
public static class StackedAdapterTensors
{
    public static IReadOnlyList<AdapterStackTensor> Located(IReadOnlyList<string> names, ModelWriteResult written) =>
        names.Select(n => written.External.TryGetValue(n, out var t)
            ? new AdapterStackTensor(n, t.Location, t.Offset, t.Length, t.Dims)
            : throw new InvalidOperationException($"stacked tensor '{n}' was not written to the data file")).ToList();
}
