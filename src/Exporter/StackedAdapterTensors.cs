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

    /// <summary>
    /// The float32 weights ([in, out], as the graph's MatMul takes them) of the modules with a DoRA stack, where the data
    /// file holds them; none where the export quantized them.
    /// </summary>
    public static IReadOnlyList<AdapterStackTensor> DoraBaseWeights(IReadOnlyList<string> names, ModelWriteResult written) =>
        names.Select(AdapterStackNames.Parse).Where(p => p?.Kind == AdapterStackKind.DoraScale)
            .Select(p => p!.Value.ModulePath + ".weight")
            .Where(w => written.External.TryGetValue(w, out var t) && t.DataType == (int)ElementType.Float && t.Dims.Length == 2)
            .Select(w => written.External[w] is var t ? new AdapterStackTensor(w, t.Location, t.Offset, t.Length, t.Dims) : null!)
            .ToList();
}
