using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Inference;

/// <summary>The checks of a <see cref="ForwardBatch"/> that need the model it is meant for.</summary>
public static class ForwardBatchChecks
{
    /// <summary>A decoder-only model predicts its own sequence: its labels must have the shape of input_ids.</summary>
    public static void CheckLabels(this ForwardBatch batch, PretrainedModel model, string path)
    {
        if (batch.Labels is not null && model is CausalLm && !batch.LabelShape!.SequenceEqual(batch.Shape))
            throw new PeftOnnxException($"{path}: labels has shape [{string.Join(", ", batch.LabelShape!)}] but {model.Architecture.ClassName} needs the shape of input_ids [{string.Join(", ", batch.Shape)}]");
    }
}
