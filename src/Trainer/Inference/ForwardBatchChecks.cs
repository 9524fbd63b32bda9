using Peft.Onnx.Core.Data;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Inference;

/// <summary>The checks of a <see cref="ForwardBatch"/> that need the model it is meant for.</summary>
public static class ForwardBatchChecks
{
    /// <summary>A decoder-only model predicts its own sequence: its labels must have the shape of input_ids.</summary>
    public static void CheckLabels(this ForwardBatch batch, PretrainedModel model, string path)
    {
        if (model is CausalLm) batch.CheckLabelsLikeInputs(path, model.Architecture.ClassName);
    }
}
