using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.PTuning;

/// <summary>
/// PEFT 0.7.1's PromptEncoder (p-tuning): embedding(total_virtual_tokens, token_dim) followed by
/// MLP: mlp_head = Linear(token_dim, h), ReLU, Linear(h, h), ReLU, Linear(h, token_dim), or
/// LSTM: lstm_head = bidirectional LSTM(token_dim, h, encoder_num_layers, batch_first, dropout between layers),
/// then mlp_head = Linear(2h, 2h), ReLU, Linear(2h, token_dim).
/// Parameters are created in torch's registration order with torch's initialisations, so a seed gives PEFT's values.
/// </summary>
public sealed class PromptEncoder : IPromptModule
{
    private readonly List<(string Name, Tensor Parameter)> _parameters = new();
    private readonly bool _lstm;
    private readonly int _lstmLayers;
    private readonly long _hidden;
    private readonly double _dropout;
    private readonly int _mlpLinears;

    public PromptEncoder(PromptEncoderConfig config)
    {
        long total = config.TotalVirtualTokens, dim = config.TokenDim!.Value, h = config.EncoderHiddenSize!.Value;
        _hidden = h;
        _lstm = config.EncoderReparameterizationType == PromptEncoderConfig.Lstm;
        _lstmLayers = config.EncoderNumLayers;
        _dropout = config.EncoderDropout;
        _parameters.Add((EmbeddingTable.WeightName, PromptParameter.Normal(total, dim)));
        if (_lstm)
        {
            // nn.LSTM.reset_parameters: every parameter uniform(-1/sqrt(h), 1/sqrt(h)), in _flat_weights_names order.
            double bound = 1.0 / Math.Sqrt(h);
            for (int layer = 0; layer < _lstmLayers; layer++)
                foreach (var suffix in new[] { "", "_reverse" })
                {
                    long input = layer == 0 ? dim : 2 * h;
                    Add($"lstm_head.weight_ih_l{layer}{suffix}", PromptParameter.Uniform([4 * h, input], bound));
                    Add($"lstm_head.weight_hh_l{layer}{suffix}", PromptParameter.Uniform([4 * h, h], bound));
                    Add($"lstm_head.bias_ih_l{layer}{suffix}", PromptParameter.Uniform([4 * h], bound));
                    Add($"lstm_head.bias_hh_l{layer}{suffix}", PromptParameter.Uniform([4 * h], bound));
                }
            AddLinear("mlp_head.0", 2 * h, 2 * h);
            AddLinear("mlp_head.2", 2 * h, dim);
            _mlpLinears = 2;
        }
        else
        {
            AddLinear("mlp_head.0", dim, h);
            AddLinear("mlp_head.2", h, h);
            AddLinear("mlp_head.4", h, dim);
            _mlpLinears = 3;
        }
    }

    public IReadOnlyList<(string Name, Tensor Parameter)> Parameters => _parameters;

    private Tensor this[string name] => _parameters.First(p => p.Name == name).Parameter;

    private void Add(string name, Tensor t) => _parameters.Add((name, t));

    private void AddLinear(string path, long inFeatures, long outFeatures)
    {
        var (w, b) = PromptParameter.Linear(inFeatures, outFeatures);
        Add($"{path}.weight", w);
        Add($"{path}.bias", b);
    }

    public Tensor Forward(long batch, bool training)
    {
        var x = PromptParameter.Lookup(this[EmbeddingTable.WeightName], batch);
        if (_lstm) x = Lstm(x, training);
        // mlp_head: Linear (ReLU Linear)*: the linears sit at even indices.
        for (int i = 0; i < _mlpLinears; i++)
        {
            if (i > 0) x = nn.functional.relu(x);
            x = nn.functional.linear(x, this[$"mlp_head.{2 * i}.weight"], this[$"mlp_head.{2 * i}.bias"]);
        }
        return x;
    }

    /// <summary>
    /// torch.nn.LSTM(batch_first, bidirectional) from zero states: gates i, f, g, o from x W_ih^T + b_ih + h W_hh^T + b_hh;
    /// each layer's output is [forward, backward] concatenated; dropout between layers while training.
    /// </summary>
    private Tensor Lstm(Tensor x, bool training)
    {
        long batch = x.shape[0], steps = x.shape[1];
        for (int layer = 0; layer < _lstmLayers; layer++)
        {
            var directions = new Tensor[2];
            for (int d = 0; d < 2; d++)
            {
                var suffix = d == 0 ? "" : "_reverse";
                var inputProjection = nn.functional.linear(x, this[$"lstm_head.weight_ih_l{layer}{suffix}"], this[$"lstm_head.bias_ih_l{layer}{suffix}"]);
                var weightHh = this[$"lstm_head.weight_hh_l{layer}{suffix}"];
                var biasHh = this[$"lstm_head.bias_hh_l{layer}{suffix}"];
                var h = zeros(batch, _hidden, dtype: x.dtype, device: x.device);
                var c = zeros(batch, _hidden, dtype: x.dtype, device: x.device);
                var outputs = new Tensor[steps];
                for (long s = 0; s < steps; s++)
                {
                    long t = d == 0 ? s : steps - 1 - s;
                    var gates = inputProjection[.., t, ..].Plus(nn.functional.linear(h, weightHh, biasHh));
                    var chunks = gates.chunk(4, -1);
                    var i = sigmoid(chunks[0]);
                    var f = sigmoid(chunks[1]);
                    var g = tanh(chunks[2]);
                    var o = sigmoid(chunks[3]);
                    c = (f * c).Plus(i * g);
                    h = o * tanh(c);
                    outputs[t] = h;
                }
                directions[d] = stack(outputs, 1);
            }
            x = cat(directions, -1);
            if (training && _dropout > 0 && layer < _lstmLayers - 1) x = nn.functional.dropout(x, _dropout, true);
        }
        return x;
    }

    public void Dispose()
    {
        foreach (var (_, t) in _parameters) t.Dispose();
        _parameters.Clear();
    }
}
