using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.GenAiAdapters;

/// <summary>
/// A PEFT LoRA adapter as ORT GenAI serves it: the parameters that replace an unmerged export's branch tensors
/// (<see cref="LoraBranches"/>: A^T [in, r] and B^T [r, out]), fed per generator from an <c>.onnx_adapter</c> file
/// into a graph whose branch tensors are inputs (<see cref="LoraGraphInputs"/>). ONNX Runtime refuses a parameter
/// without dimensions, so the scaling scalar is folded into B^T and the graph's own scaling must be 1 (export a carrier
/// adapter with lora_alpha = r). Ranks are padded with zero rows and columns to the graph's rank, which leaves every
/// product unchanged, so adapters of different ranks run through one graph.
/// </summary>
public static class LoraOnnxAdapter
{
    /// <summary>The parameters of the LoRA adapter in <paramref name="adapterDir"/> on the base in <paramref name="modelDir"/>, ranks padded to <paramref name="graphRank"/>.</summary>
    public static List<OnnxAdapterParameter> Parameters(string modelDir, string adapterDir, int graphRank)
    {
        var architecture = Architecture.For(ModelConfig.Load(modelDir));
        using var tensors = CheckpointTensors.Open(modelDir);
        var checkpoint = new CheckpointWeights(tensors);
        using var adapter = AdapterWeights.Open(adapterDir, architecture);
        if (adapter.Config is not LoraConfig lora)
            throw new PeftOnnxException($"{adapterDir}: an .onnx_adapter holds a LoRA adapter (this one is {adapter.Config.PeftType})");
        if (lora.UsesDora || lora.HasLoraBias)
            throw new PeftOnnxException($"{adapterDir}: use_dora and lora_bias have no place in ORT GenAI's LoRA inputs (plain LoRA only)");
        var result = new List<OnnxAdapterParameter>();
        foreach (var t in LoraTarget.ReadAll(lora, architecture, adapter, checkpoint))
        {
            int r = t.Rank, inF = checked((int)t.Linear.InFeatures), outF = checked((int)t.Linear.OutFeatures);
            if (r > graphRank) throw new PeftOnnxException($"{adapterDir}: '{t.Linear.Path}' has rank {r}, more than the graph's {graphRank}");
            // A [r, in] -> A^T [in, R]; B [out, r] -> scaling * B^T [R, out]; rows and columns past r stay zero
            var a = new float[(long)inF * graphRank];
            for (int k = 0; k < r; k++)
                for (int i = 0; i < inF; i++) a[(long)i * graphRank + k] = t.A[(long)k * inF + i];
            var b = new float[(long)graphRank * outF];
            for (int o = 0; o < outF; o++)
                for (int k = 0; k < r; k++) b[(long)k * outF + o] = (float)(t.B[(long)o * r + k] * t.Match.Scaling);
            result.Add(new OnnxAdapterParameter(LoraBranches.AName(t.Linear.Path), [inF, graphRank], a));
            result.Add(new OnnxAdapterParameter(LoraBranches.BName(t.Linear.Path), [graphRank, outF], b));
        }
        return result;
    }
}
