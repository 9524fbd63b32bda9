using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.PromptLearning;

/// <summary>
/// A prompt method's trainable module (PEFT's prompt_encoder[adapter]): PromptEmbedding, PromptEncoder or
/// PrefixEncoder. It maps the virtual token indices 0..rows-1 to one output row each. Owns its parameters.
/// </summary>
public interface IPromptModule : IDisposable
{
    /// <summary>Parameters under their names inside the module ("embedding.weight", "mlp_head.0.bias", ...).</summary>
    IReadOnlyList<(string Name, Tensor Parameter)> Parameters { get; }

    /// <summary>
    /// The module applied to the virtual token indices repeated for each batch row (PEFT's
    /// prompt_encoder(prompt_tokens) with prompt_tokens [batch, rows]): [batch, rows, width]; dropout only when training.
    /// </summary>
    Tensor Forward(long batch, bool training);
}

/// <summary>
/// A bare nn.Embedding as the whole module: prompt tuning, prefix tuning without projection, and the
/// inference-mode module PEFT builds for a saved p-tuning / projected prefix adapter (the stored output rows).
/// </summary>
public sealed class EmbeddingTable(Tensor weight) : IPromptModule
{
    public const string WeightName = "embedding.weight";

    public Tensor Weight { get; } = weight;

    /// <summary>nn.Embedding's default initialisation: normal(0, 1).</summary>
    public static EmbeddingTable Random(long rows, long width) => new(PromptParameter.Normal(rows, width));

    public IReadOnlyList<(string Name, Tensor Parameter)> Parameters => [(WeightName, Weight)];

    public Tensor Forward(long batch, bool training) => PromptParameter.Lookup(Weight, batch);

    public void Dispose() => Weight.Dispose();
}

/// <summary>Creating trainable tensors the way torch.nn's modules initialise them (same RNG calls, same order).</summary>
public static class PromptParameter
{
    /// <summary>A fresh leaf tensor that requires grad and belongs to no dispose scope.</summary>
    public static Tensor Leaf(Tensor values)
    {
        var leaf = values.detach().clone().requires_grad_(true);
        leaf.DetachFromDisposeScope();
        return leaf;
    }

    /// <summary>nn.Embedding(prompt_tokens) for prompt_tokens = arange(rows) repeated over the batch: [batch, rows, width].</summary>
    public static Tensor Lookup(Tensor weight, long batch)
    {
        long rows = weight.shape[0];
        using var indices = ScalarOperands.Arange(0, rows, dtype: int64, device: weight.device).repeat(batch);
        return weight.index_select(0, indices).view(batch, rows, weight.shape[1]);
    }

    /// <summary>nn.Embedding: weight.normal_(0, 1).</summary>
    public static Tensor Normal(long rows, long width)
    {
        using var noGrad = no_grad();
        var t = empty([rows, width], float32);
        t.normal_(0, 1);
        t.requires_grad_(true);
        t.DetachFromDisposeScope();
        return t;
    }

    /// <summary>uniform_(-bound, bound) on a new tensor (LSTM weights, Linear biases).</summary>
    public static Tensor Uniform(long[] shape, double bound)
    {
        using var noGrad = no_grad();
        var t = empty(shape, float32);
        t.uniform_(-bound, bound);
        t.requires_grad_(true);
        t.DetachFromDisposeScope();
        return t;
    }

    /// <summary>
    /// nn.Linear(in, out).reset_parameters: kaiming_uniform_(weight, a=sqrt(5)) (bound computed as torch does:
    /// sqrt(3) * gain / sqrt(fan_in)), then bias uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    /// </summary>
    public static (Tensor Weight, Tensor Bias) Linear(long inFeatures, long outFeatures)
    {
        double a = Math.Sqrt(5.0);
        double gain = Math.Sqrt(2.0 / (1 + a * a));
        double std = gain / Math.Sqrt(inFeatures);
        var weight = Uniform([outFeatures, inFeatures], Math.Sqrt(3.0) * std);
        var bias = Uniform([outFeatures], 1.0 / Math.Sqrt(inFeatures));
        return (weight, bias);
    }
}
