using System.Text.Json.Serialization;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>transformers' OPTConfig (model_type "opt").</summary>
public sealed record OptConfig : ModelConfig
{
    public int VocabSize { get; init; } = 50272;
    public int HiddenSize { get; init; } = 768;
    public int NumHiddenLayers { get; init; } = 12;
    public int FfnDim { get; init; } = 3072;
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public bool DoLayerNormBefore { get; init; } = true;
    [JsonPropertyName("_remove_final_layer_norm")]
    public bool RemoveFinalLayerNorm { get; init; }
    public int? WordEmbedProjDim { get; init; }
    public double Dropout { get; init; } = 0.1;
    public double AttentionDropout { get; init; }
    public int NumAttentionHeads { get; init; } = 12;
    public string ActivationFunction { get; init; } = "relu";
    public double Layerdrop { get; init; }
    public double InitStd { get; init; } = 0.02;
    public bool EnableBias { get; init; } = true;
    public bool LayerNormElementwiseAffine { get; init; } = true;

    /// <summary>Width of the token embeddings (project_in/out exist when it differs from hidden_size).</summary>
    public int EmbedDim => WordEmbedProjDim ?? HiddenSize;
    [JsonIgnore] public override ModelFamily Family => OptFamily.Instance;
    [JsonIgnore] public override int InputEmbeddingWidth => EmbedDim;
    public override bool IsEncoderDecoder => false;
    public override ModelDimensions Dimensions => new(VocabSize, HiddenSize, NumHiddenLayers, NumAttentionHeads, NumAttentionHeads, NumAttentionHeads > 0 ? HiddenSize / NumAttentionHeads : 0);

    public override void Validate()
    {
        RequirePositive(VocabSize, "vocab_size");
        RequirePositive(HiddenSize, "hidden_size");
        RequireLayerCount(NumHiddenLayers, "num_hidden_layers");
        RequirePositive(NumAttentionHeads, "num_attention_heads");
        RequirePositive(EmbedDim, "word_embed_proj_dim");
        Require(HiddenSize % NumAttentionHeads == 0, "hidden_size", HiddenSize, $"a multiple of num_attention_heads = {NumAttentionHeads}");
        RequirePositive(FfnDim, "ffn_dim");
        RequirePositive(MaxPositionEmbeddings, "max_position_embeddings");
        RequireActivation(ActivationFunction, "activation_function");
        RequireProbability(Dropout, "dropout");
        RequireProbability(AttentionDropout, "attention_dropout");
        RequireProbability(Layerdrop, "layerdrop");
    }

    [JsonIgnore] public override ContextWindow ContextWindow => new(MaxPositionEmbeddings, "max_position_embeddings");

    /// <summary>
    /// embed_positions: max_position_embeddings + 2 rows, positions shifted by 2 (OPTLearnedPositionalEmbedding), so
    /// max_position_embeddings positions.
    /// </summary>
    [JsonIgnore] public override PositionTable PositionTable => new(ContextWindow.Positions, ContextWindow.Key, SourcePath);
}
