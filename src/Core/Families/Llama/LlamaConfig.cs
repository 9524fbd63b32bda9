using System.Text.Json.Serialization;
using System.Text.Json;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>transformers' LlamaConfig (model_type "llama").</summary>
public sealed record LlamaConfig : ModelConfig
{
    public int VocabSize { get; init; } = 32000;
    public int HiddenSize { get; init; } = 4096;
    public int IntermediateSize { get; init; } = 11008;
    public int NumHiddenLayers { get; init; } = 32;
    public int NumAttentionHeads { get; init; } = 32;
    public int? NumKeyValueHeads { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double InitializerRange { get; init; } = 0.02;
    public double RmsNormEps { get; init; } = 1e-6;
    public int PretrainingTp { get; init; } = 1;
    public double RopeTheta { get; init; } = 10000.0;
    public JsonElement? RopeScaling { get; init; }
    public bool AttentionBias { get; init; }

    public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;
    public override bool TiesWordEmbeddings => TieWordEmbeddings ?? false;
    [JsonIgnore] public override ModelFamily Family => LlamaFamily.Instance;
    public override bool IsEncoderDecoder => false;
    /// <summary>The form transformers 4.33's _rope_scaling_validation accepts: {"type": "linear"|"dynamic", "factor": float > 1}.</summary>
    private static bool IsRopeScalingShape(JsonElement scaling) =>
        scaling.ValueKind == JsonValueKind.Object
        && scaling.EnumerateObject().Count() == 2
        && scaling.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() is "linear" or "dynamic"
        && scaling.TryGetProperty("factor", out var factor) && factor.ValueKind == JsonValueKind.Number && factor.TryGetDouble(out var f) && f > 1;

    public override ModelDimensions Dimensions => new(VocabSize, HiddenSize, NumHiddenLayers, NumAttentionHeads, KeyValueHeads, NumAttentionHeads > 0 ? HiddenSize / NumAttentionHeads : 0);

    public override void Validate()
    {
        RequirePositive(VocabSize, "vocab_size");
        RequirePositive(HiddenSize, "hidden_size");
        RequireLayerCount(NumHiddenLayers, "num_hidden_layers");
        RequirePositive(NumAttentionHeads, "num_attention_heads");
        Require(HiddenSize % NumAttentionHeads == 0, "hidden_size", HiddenSize, $"a multiple of num_attention_heads = {NumAttentionHeads}");
        Require(KeyValueHeads > 0 && NumAttentionHeads % KeyValueHeads == 0, "num_key_value_heads", KeyValueHeads, $"a positive divisor of num_attention_heads = {NumAttentionHeads}");
        RequirePositive(IntermediateSize, "intermediate_size");
        RequireActivation(HiddenAct, "hidden_act");
        Require(RmsNormEps > 0 && double.IsFinite(RmsNormEps), "rms_norm_eps", RmsNormEps, "a small positive number such as 1e-06");
        Require(RopeTheta > 0 && double.IsFinite(RopeTheta), "rope_theta", RopeTheta, "a positive number");
        RequirePositive(MaxPositionEmbeddings, "max_position_embeddings");
        if (RopeScaling is { ValueKind: not JsonValueKind.Null } scaling)
            Require(false, "rope_scaling", scaling.GetRawText(), IsRopeScalingShape(scaling)
                ? "null (RoPE scaling is not supported here)"
                : "null, or as transformers checks it an object {\"type\": \"linear\" or \"dynamic\", \"factor\": a number > 1} (RoPE scaling is not supported here)");
    }

    /// <summary>RoPE runs at any length, but the model was trained up to max_position_embeddings.</summary>
    [JsonIgnore] public override ContextWindow ContextWindow => new(MaxPositionEmbeddings, "max_position_embeddings");
}
