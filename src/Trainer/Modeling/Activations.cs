using Peft.Onnx.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>The activation functions configs name (hidden_act, activation_function, feed_forward_proj).</summary>
public static class Activations
{
    /// <summary>
    /// transformers' ACT2FN (activations.py) for the names configs use. gelu_new is the tanh approximation
    /// written out as transformers writes it, so its rounding matches.
    /// </summary>
    public static Func<Tensor, Tensor> Get(string name) => name switch
    {
        "gelu" => x => nn.functional.gelu(x),
        "gelu_python" => x => x.Times(0.5) * special.erf(x.Over(Math.Sqrt(2.0))).Plus(1.0),
        "gelu_new" or "gelu_accurate" => x => x.Times(0.5) * tanh(x.Plus(x.Pow(3.0).Times(0.044715)).Times(Math.Sqrt(2.0 / Math.PI))).Plus(1.0),
        "gelu_fast" => x => x.Times(0.5) * tanh(x.Times(0.7978845608) * (x.Times(0.044715) * x).Plus(1.0)).Plus(1.0),
        "gelu_pytorch_tanh" => x => x.gelu(TorchSharp.Modules.GELU.Approximate.tanh),
        "gelu_10" => x =>
        {
            using var low = (-10.0).ToScalar();
            using var high = 10.0.ToScalar();
            return clamp(nn.functional.gelu(x), low, high);
        },
        "quick_gelu" => x => x * sigmoid(x.Times(1.702)),
        "relu" => x => nn.functional.relu(x),
        "relu2" => x => nn.functional.relu(x).Pow(2),
        "relu6" => x => nn.functional.relu6(x),
        "leaky_relu" => x =>
        {
            using var negativeSlope = 0.01.ToScalar();
            return x.leaky_relu(negativeSlope);
        },
        "silu" or "swish" => x => nn.functional.silu(x),
        "mish" => x => x * tanh(Softplus(x)),
        "sigmoid" => x => sigmoid(x),
        "tanh" => x => tanh(x),
        "linear" => x => x,
        _ => throw new PeftOnnxException($"activation function '{name}' is not supported (expected one of gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, gelu_python, gelu_accurate, gelu_10, quick_gelu, relu, relu2, relu6, leaky_relu, silu, swish, mish, sigmoid, tanh, linear)"),
    };

    /// <summary>
    /// softplus with beta 1 and threshold 20 (what mish uses), written out because TorchSharp's softplus builds
    /// its beta and threshold Scalars internally, where nothing keeps them alive through the native call.
    /// </summary>
    private static Tensor Softplus(Tensor x)
    {
        using var aboveThreshold = x.Greater(20);
        using var exponential = exp(x);
        using var smooth = log1p(exponential);
        return where(aboveThreshold, x, smooth);
    }
}
