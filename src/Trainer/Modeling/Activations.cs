using Peft.Onnx.Core;
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
        "gelu_python" => x => x * 0.5 * (1.0 + special.erf(x / Math.Sqrt(2.0))),
        "gelu_new" or "gelu_accurate" => x => 0.5 * x * (1.0 + tanh(Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * pow(x, 3.0)))),
        "gelu_fast" => x => 0.5 * x * (1.0 + tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
        "gelu_pytorch_tanh" => x => x.gelu(TorchSharp.Modules.GELU.Approximate.tanh),
        "gelu_10" => x => clamp(nn.functional.gelu(x), -10.0, 10.0),
        "quick_gelu" => x => x * sigmoid(1.702 * x),
        "relu" => x => nn.functional.relu(x),
        "relu2" => x => nn.functional.relu(x).square(),
        "relu6" => x => nn.functional.relu6(x),
        "leaky_relu" => x => nn.functional.leaky_relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        "mish" => x => nn.functional.mish(x),
        "sigmoid" => x => sigmoid(x),
        "tanh" => x => tanh(x),
        "linear" => x => x,
        _ => throw new PeftOnnxException($"activation function '{name}' is not supported (expected one of gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, gelu_python, gelu_accurate, gelu_10, quick_gelu, relu, relu2, relu6, leaky_relu, silu, swish, mish, sigmoid, tanh, linear)"),
    };
}
