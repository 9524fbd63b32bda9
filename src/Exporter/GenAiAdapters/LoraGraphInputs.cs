using Google.Protobuf;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Exporter.GenAiAdapters;

/// <summary>
/// Turns the LoRA branch tensors of an unmerged decoder-only export (<see cref="LoraBranches"/>: A and B of every
/// target; the scaling stays a constant) into overridable initializers: each is also declared a graph input of its own shape, which is what
/// ONNX Runtime needs to take an adapter's tensors as feeds (ORT GenAI passes an active adapter's parameters that way);
/// unfed, the exported values are used. Rewrites model.onnx in place (its external data is untouched).
/// </summary>
public static class LoraGraphInputs
{
    public static IReadOnlyList<string> MakeOverridable(string exportDir)
    {
        var path = Path.Combine(exportDir, CausalLmContract.ModelFile);
        if (!File.Exists(path)) throw new PeftOnnxException($"{exportDir}: {CausalLmContract.ModelFile} not found (a decoder-only export)");
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var declared = model.Graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var added = new List<string>();
        foreach (var init in model.Graph.Initializer)
        {
            if (!IsBranchTensor(init.Name) || declared.Contains(init.Name)) continue;
            var shape = new TensorShapeProto();
            foreach (var d in init.Dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
            model.Graph.Input.Add(new ValueInfoProto
            {
                Name = init.Name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = init.DataType, Shape = shape } },
            });
            added.Add(init.Name);
        }
        if (added.Count == 0) throw new PeftOnnxException($"{path}: no LoRA branch tensors (export with --adapter DIR --no-merge)");
        var staging = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        File.WriteAllBytes(staging, model.ToByteArray());
        File.Move(staging, path, overwrite: true);
        return added;
    }

    private static bool IsBranchTensor(string name) =>
        name.EndsWith(LoraBranches.AName(""), StringComparison.Ordinal) || name.EndsWith(LoraBranches.BName(""), StringComparison.Ordinal);
}
