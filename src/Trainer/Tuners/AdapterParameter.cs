using Peft.Onnx.Core.Peft;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>
/// One adapter parameter of a wrapped module, as PEFT names it: <c>{module}.{Attribute}.default[.{Leaf}]</c> in
/// named_parameters(), <c>{module}.{Attribute}[.{Leaf}]</c> in adapter_model.safetensors; PEFT drops the leaf of
/// some (DoRA's magnitude: <paramref name="LeafSaved"/> false).
/// </summary>
public sealed record AdapterParameter(string Attribute, string? Leaf, Tensor Value, bool LeafSaved = true)
{
    /// <summary>PEFT's named_parameters() name of this parameter on <paramref name="modulePath"/>.</summary>
    public string NamedOn(string modulePath) => AdapterFormat.NamedModuleParameter(modulePath, Attribute, Leaf);

    /// <summary>The saved name in adapter_model.safetensors of this parameter on <paramref name="modulePath"/>.</summary>
    public string SavedOn(string modulePath) => AdapterFormat.ModuleKey(modulePath, Leaf is null || !LeafSaved ? Attribute : $"{Attribute}.{Leaf}");
}
