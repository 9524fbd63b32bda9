using System.Text.Json.Serialization;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT 0.7.1's PromptEncoderConfig (p-tuning): virtual token embeddings passed through a small encoder (an MLP,
/// or a bidirectional LSTM with an MLP head) while training. Only the encoder's output is saved
/// (prompt_embeddings), so the encoder matters for training and counting, not for inference.
/// </summary>
public sealed record PromptEncoderConfig : PromptLearningConfig
{
    public const string Type = "P_TUNING";
    public const string Mlp = "MLP";
    public const string Lstm = "LSTM";

    public PromptEncoderConfig() => PeftType = Type;

    /// <summary>"MLP" or "LSTM".</summary>
    public string EncoderReparameterizationType { get; init; } = Mlp;

    /// <summary>Null means token_dim (filled by <see cref="WithModelDefaults"/>).</summary>
    public int? EncoderHiddenSize { get; init; }

    /// <summary>LSTM layers; PEFT 0.7.1's MLP ignores it (always two hidden layers, with a warning).</summary>
    public int EncoderNumLayers { get; init; } = 2;

    [JsonConverter(typeof(PythonFloatConverter))] public double EncoderDropout { get; init; }

    protected override string MethodPeftType => Type;

    public override PromptEncoderConfig WithModelDefaults(ModelConfig model)
    {
        var filled = (PromptEncoderConfig)base.WithModelDefaults(model);
        return filled with { EncoderHiddenSize = filled.EncoderHiddenSize ?? filled.TokenDim };
    }

    /// <summary>
    /// PromptEncoder: Embedding(total_virtual_tokens, token_dim), then
    /// MLP: Linear(token_dim, h), ReLU, Linear(h, h), ReLU, Linear(h, token_dim);
    /// LSTM: LSTM(token_dim, h, encoder_num_layers, bidirectional) and Linear(2h, 2h), ReLU, Linear(2h, token_dim).
    /// </summary>
    protected override long PromptEncoderParameters()
    {
        checked
        {
            long dim = Filled(TokenDim, "token_dim"), h = Filled(EncoderHiddenSize, "encoder_hidden_size");
            long embedding = (long)Filled(NumVirtualTokens, "num_virtual_tokens") * Filled(NumTransformerSubmodules, "num_transformer_submodules") * dim;
            if (EncoderReparameterizationType == Mlp)
                return embedding + Linear(dim, h) + Linear(h, h) + Linear(h, dim);
            long lstm = 0;
            for (int layer = 0; layer < EncoderNumLayers; layer++)
            {
                long input = layer == 0 ? dim : 2 * h;
                // Per direction: weight_ih [4h, input], weight_hh [4h, h], bias_ih and bias_hh [4h].
                lstm += 2 * (4 * h * input + 4 * h * h + 8 * h);
            }
            return embedding + lstm + Linear(2 * h, 2 * h) + Linear(2 * h, dim);
        }
    }

    private static long Linear(long inFeatures, long outFeatures) => checked(inFeatures * outFeatures + outFeatures);

    public override void Validate()
    {
        base.Validate();
        Require(EncoderReparameterizationType is Mlp or Lstm, "encoder_reparameterization_type", EncoderReparameterizationType, "\"MLP\" or \"LSTM\"");
        RequirePositiveOrNull(EncoderHiddenSize, "encoder_hidden_size");
        Require(EncoderNumLayers is > 0 and <= ModelConfig.MaxLayers, "encoder_num_layers", EncoderNumLayers, $"a positive integer up to {ModelConfig.MaxLayers}");
        Require(EncoderDropout >= 0 && EncoderDropout < 1, "encoder_dropout", EncoderDropout, "a probability in [0, 1)");
    }
}
