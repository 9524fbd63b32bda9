using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Runtime.Adapters;

/// <summary>
/// Reads a PEFT prefix-tuning folder for <see cref="OnnxModel.AddAdapter"/>: checked against the base as the exporter
/// checks it (<see cref="AdapterFit"/>), then its keys and values laid out as the exporter bakes them
/// (<see cref="PrefixTuningLayout"/>), and checked against the export's prefix stacks.
/// </summary>
internal static class PeftPrefixReader
{
    public static PrefixKeyValues Read(string name, string dir, ModelConfig model, PrefixSlots stacks)
    {
        var config = AdapterConfig.Load(dir);
        var path = AdapterFormat.WeightsPath(dir);
        using var file = SafeTensorsFile.Open(path);
        var prepared = (PrefixTuningConfig)AdapterFit.Check(config, Architecture.For(model), file, path);
        var shape = file[AdapterFormat.PromptEmbeddings].Shape;
        var prefix = PrefixTuningLayout.ForDecoder(file.ReadFloat32(AdapterFormat.PromptEmbeddings), checked((int)shape[0]), checked((int)shape[1]),
            prepared.NumVirtualTokens!.Value, model, path);
        if (prefix.NumLayers != stacks.NumLayers || prefix.HeadDim != stacks.HeadDim || stacks.QueryHeads % prefix.Heads != 0)
            throw new PeftOnnxException($"AddAdapter {name}: the adapter was made for another base: {path}: '{AdapterFormat.PromptEmbeddings}' gives {prefix.NumLayers} layers x [{prefix.Heads} heads, {prefix.Length}, {prefix.HeadDim}] but this export's prefix stacks hold {stacks.NumLayers} layers x [{stacks.QueryHeads} heads, {stacks.Length}, {stacks.HeadDim}]");
        return prefix;
    }
}
