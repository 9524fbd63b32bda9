using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// The one place a family meets its ONNX graph(s): a decoder-only family builds one graph of
/// <see cref="CausalLmInterface"/>, an encoder-decoder family two of <see cref="Seq2SeqInterface"/>.
/// Adding a family adds its line here.
/// </summary>
public static class FamilyGraphs
{
    /// <summary>True for the families that have a graph here.</summary>
    public static bool IsSupported(ModelConfig config) => config is BloomConfig or Gpt2Config or OptConfig or LlamaConfig or T5Config;

    /// <summary>The decoder-only family graph with <paramref name="options"/> (base weights from <paramref name="weights"/>).</summary>
    public static GraphBuilder BuildCausal(ModelConfig config, WeightSource weights, CausalLmGraphOptions options) => config switch
    {
        BloomConfig c => BloomGraph.Build(c, weights, options),
        Gpt2Config c => Gpt2Graph.Build(c, weights, options),
        OptConfig c => OptGraph.Build(c, weights, options),
        LlamaConfig c => LlamaGraph.Build(c, weights, options),
        _ => throw new PeftOnnxException($"{config.SourcePath}: model_type '{config.ModelType}' has no decoder-only ONNX export"),
    };

    /// <summary>The encoder and decoder graphs of an encoder-decoder family with <paramref name="options"/>.</summary>
    public static Seq2SeqGraphs BuildSeq2Seq(ModelConfig config, WeightSource weights, Seq2SeqGraphOptions options) => config switch
    {
        T5Config c => T5Graph.Build(c, weights, options),
        _ => throw new PeftOnnxException($"{config.SourcePath}: model_type '{config.ModelType}' has no encoder-decoder ONNX export"),
    };

    /// <summary>The refusal for a model_type without a graph here.</summary>
    public static PeftOnnxException NotSupported(ModelConfig config) =>
        new($"{config.SourcePath}: ONNX export of model_type '{config.ModelType}' is not supported yet (supported: {FamilyRegistry.ModelTypeList})");
}
