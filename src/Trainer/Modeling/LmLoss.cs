using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>The losses transformers' LM heads compute.</summary>
public static class LmLoss
{
    public const long IgnoreIndex = Peft.Onnx.Core.Data.LabelIds.Ignore;

    /// <summary>Causal LM: logits at t predict labels at t+1; -100 labels are ignored; mean over the rest.</summary>
    public static Tensor CausalShifted(Tensor logits, Tensor labels)
    {
        var vocab = logits.shape[^1];
        var shiftLogits = logits[.., ..^1, ..].contiguous().view(-1, vocab);
        var shiftLabels = labels[.., 1..].contiguous().view(-1);
        return nn.functional.cross_entropy(shiftLogits, shiftLabels, ignore_index: IgnoreIndex);
    }

    /// <summary>Encoder-decoder: logits at t predict labels at t (the decoder input is already shifted).</summary>
    public static Tensor Aligned(Tensor logits, Tensor labels)
    {
        var vocab = logits.shape[^1];
        return nn.functional.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1), ignore_index: IgnoreIndex);
    }
}
