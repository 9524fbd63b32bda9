using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.PrefixTuning;

/// <summary>
/// PEFT 0.7.1's PrefixEncoder with prefix_projection: embedding(num_virtual_tokens, token_dim), then
/// transform = Linear(token_dim, encoder_hidden_size), Tanh, Linear(encoder_hidden_size, num_layers * 2 * token_dim).
/// (Without projection the module is a bare <see cref="EmbeddingTable"/> of num_layers * 2 * token_dim columns.)
/// </summary>
public sealed class PrefixEncoder : IPromptModule
{
    private readonly Tensor _embedding, _w0, _b0, _w2, _b2;

    public PrefixEncoder(PrefixTuningConfig config)
    {
        long tokens = config.NumVirtualTokens!.Value, dim = config.TokenDim!.Value, h = config.EncoderHiddenSize!.Value;
        long width = config.NumLayers!.Value * 2 * dim;
        _embedding = PromptParameter.Normal(tokens, dim);
        (_w0, _b0) = PromptParameter.Linear(dim, h);
        (_w2, _b2) = PromptParameter.Linear(h, width);
    }

    public IReadOnlyList<(string Name, Tensor Parameter)> Parameters =>
    [
        (EmbeddingTable.WeightName, _embedding),
        ("transform.0.weight", _w0), ("transform.0.bias", _b0),
        ("transform.2.weight", _w2), ("transform.2.bias", _b2),
    ];

    public Tensor Forward(long batch, bool training) =>
        nn.functional.linear(tanh(nn.functional.linear(PromptParameter.Lookup(_embedding, batch), _w0, _b0)), _w2, _b2);

    public void Dispose()
    {
        foreach (var t in new[] { _embedding, _w0, _b0, _w2, _b2 }) t.Dispose();
    }
}
