using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>A tuner whose PEFT model adds a term to the loss whenever labels are given (AdaLoRA's orthogonal regulariser).</summary>
public interface IRegularizedTuner
{
    /// <summary>The term added to the model's loss (a scalar, in the graph when training).</summary>
    Tensor Regularizer();
}
