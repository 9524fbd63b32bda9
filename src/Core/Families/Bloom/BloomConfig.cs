using System.Text.Json.Serialization;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>transformers' BloomConfig (model_type "bloom").</summary>
public sealed record BloomConfig : ModelConfig
{
    public int VocabSize { get; init; } = 250880;
    public int HiddenSize { get; init; } = 64;
    /// <summary>Older BLOOM configs spell hidden_size this way; transformers accepts both.</summary>
    public int? NEmbed { get; init; }
    public int NLayer { get; init; } = 2;
    public int NHead { get; init; } = 8;
    public double LayerNormEpsilon { get; init; } = 1e-5;
    public double InitializerRange { get; init; } = 0.02;
    public bool ApplyResidualConnectionPostLayernorm { get; init; }
    public double HiddenDropout { get; init; }
    public double AttentionDropout { get; init; }
    public int PretrainingTp { get; init; } = 1;
    public bool SlowButExact { get; init; }

    public int Width => NEmbed ?? HiddenSize;
    [JsonIgnore] public override ModelFamily Family => BloomFamily.Instance;
    public override bool IsEncoderDecoder => false;
    public override ModelDimensions Dimensions => new(VocabSize, Width, NLayer, NHead, NHead, NHead > 0 ? Width / NHead : 0);

    public override void Validate()
    {
        RequirePositive(VocabSize, "vocab_size");
        RequirePositive(Width, NEmbed is null ? "hidden_size" : "n_embed");
        RequireLayerCount(NLayer, "n_layer");
        RequirePositive(NHead, "n_head");
        Require(Width % NHead == 0, "hidden_size", Width, $"a multiple of n_head = {NHead}");
        RequireEpsilon(LayerNormEpsilon, "layer_norm_epsilon");
        RequireProbability(HiddenDropout, "hidden_dropout");
        RequireProbability(AttentionDropout, "attention_dropout");
    }
}
