using System.Text.Json.Serialization;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>transformers' GPT2Config (model_type "gpt2").</summary>
public sealed record Gpt2Config : ModelConfig
{
    public int VocabSize { get; init; } = 50257;
    public int NPositions { get; init; } = 1024;
    public int NEmbd { get; init; } = 768;
    public int NLayer { get; init; } = 12;
    public int NHead { get; init; } = 12;
    public int? NInner { get; init; }
    public string ActivationFunction { get; init; } = "gelu_new";
    public double ResidPdrop { get; init; } = 0.1;
    public double EmbdPdrop { get; init; } = 0.1;
    public double AttnPdrop { get; init; } = 0.1;
    public double LayerNormEpsilon { get; init; } = 1e-5;
    public double InitializerRange { get; init; } = 0.02;
    public bool ScaleAttnWeights { get; init; } = true;
    public bool ScaleAttnByInverseLayerIdx { get; init; }
    public bool ReorderAndUpcastAttn { get; init; }

    public int InnerSize => NInner ?? 4 * NEmbd;
    [JsonIgnore] public override ModelFamily Family => Gpt2Family.Instance;
    public override bool IsEncoderDecoder => false;
    public override ModelDimensions Dimensions => new(VocabSize, NEmbd, NLayer, NHead, NHead, NHead > 0 ? NEmbd / NHead : 0);

    public override void Validate()
    {
        RequirePositive(VocabSize, "vocab_size");
        RequirePositive(NEmbd, "n_embd");
        RequireLayerCount(NLayer, "n_layer");
        RequirePositive(NHead, "n_head");
        Require(NEmbd % NHead == 0, "n_embd", NEmbd, $"a multiple of n_head = {NHead}");
        RequirePositive(NPositions, "n_positions");
        RequirePositive(InnerSize, "n_inner");
        RequireActivation(ActivationFunction, "activation_function");
        RequireEpsilon(LayerNormEpsilon, "layer_norm_epsilon");
        RequireProbability(ResidPdrop, "resid_pdrop");
        RequireProbability(EmbdPdrop, "embd_pdrop");
        RequireProbability(AttnPdrop, "attn_pdrop");
    }

    [JsonIgnore] public override ContextWindow ContextWindow => new(NPositions, "n_positions");

    /// <summary>wpe: one learned row per position.</summary>
    [JsonIgnore] public override PositionTable PositionTable => new(ContextWindow.Positions, ContextWindow.Key, SourcePath);
}
