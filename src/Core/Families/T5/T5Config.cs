using System.Text.Json.Serialization;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>transformers' T5Config (model_type "t5"); mT5 shares the architecture with other defaults.</summary>
public record T5Config : ModelConfig
{
    public int VocabSize { get; init; } = 32128;
    public int DModel { get; init; } = 512;
    public int DKv { get; init; } = 64;
    public int DFf { get; init; } = 2048;
    public int NumLayers { get; init; } = 6;
    public int? NumDecoderLayers { get; init; }
    public int NumHeads { get; init; } = 8;
    public int RelativeAttentionNumBuckets { get; init; } = 32;
    public int RelativeAttentionMaxDistance { get; init; } = 128;
    public double DropoutRate { get; init; } = 0.1;
    public double LayerNormEpsilon { get; init; } = 1e-6;
    public double InitializerFactor { get; init; } = 1.0;
    public string FeedForwardProj { get; init; } = "relu";

    public T5Config()
    {
        PadTokenId = 0;
        EosTokenId = [1];
    }

    public int DecoderLayers => NumDecoderLayers ?? NumLayers;

    /// <summary>"gated-gelu" means a gated feed-forward (wi_0, wi_1) with gelu_new, as transformers parses it.</summary>
    public bool IsGatedAct => FeedForwardProj.Split('-') is ["gated", _];

    public string DenseActFn
    {
        get
        {
            var act = FeedForwardProj.Split('-')[^1];
            return act == "gelu" && IsGatedAct ? "gelu_new" : act;
        }
    }

    [JsonIgnore] public override ModelFamily Family => T5Family.T5;
    public override bool IsEncoderDecoder => true;
    public override ModelDimensions Dimensions => new(VocabSize, DModel, NumLayers, NumHeads, NumHeads, DKv) { NumDecoderLayers = DecoderLayers };

    public override void Validate()
    {
        Require(FeedForwardProj is not null, "feed_forward_proj", "null", "'ACT' or 'gated-ACT', e.g. 'relu' or 'gated-gelu'");
        RequirePositive(VocabSize, "vocab_size");
        RequirePositive(DModel, "d_model");
        RequirePositive(DKv, "d_kv");
        RequireLayerCount(NumLayers, "num_layers");
        RequirePositive(NumHeads, "num_heads");
        RequirePositive(DFf, "d_ff");
        RequireLayerCount(DecoderLayers, "num_decoder_layers");
        Require(RelativeAttentionNumBuckets > 1, "relative_attention_num_buckets", RelativeAttentionNumBuckets, "an integer above 1");
        var parts = (FeedForwardProj ?? "").Split('-');
        Require(parts.Length == 1 || (parts.Length == 2 && parts[0] == "gated"), "feed_forward_proj", FeedForwardProj ?? "null", "'ACT' or 'gated-ACT', e.g. 'relu' or 'gated-gelu'");
        Require(ActivationNames.Contains(DenseActFn), "feed_forward_proj", FeedForwardProj ?? "null", $"'ACT' or 'gated-ACT' with ACT one of {string.Join(", ", ActivationNames)}");
        // T5Attention._relative_position_bucket divides by log(max_distance / max_exact), max_exact = buckets / 2 in the
        // decoder: at or below it the bucket is NaN or negative and the embedding lookup fails.
        Require(RelativeAttentionMaxDistance > RelativeAttentionNumBuckets / 2, "relative_attention_max_distance", RelativeAttentionMaxDistance,
            $"an integer above relative_attention_num_buckets / 2 = {RelativeAttentionNumBuckets / 2}");
        RequireEpsilon(LayerNormEpsilon, "layer_norm_epsilon");
        RequireProbability(DropoutRate, "dropout_rate");
        // _shift_right feeds the decoder start token and replaces -100 in the labels with the pad token.
        RequireTokenId(PadTokenId, "pad_token_id", VocabSize);
        RequireTokenId(DecoderStartId, DecoderStartTokenId is null ? "pad_token_id" : "decoder_start_token_id", VocabSize);
    }
}
