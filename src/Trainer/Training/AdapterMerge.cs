using Peft.Onnx.Core;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;

namespace Peft.Onnx.Trainer.Training;

/// <summary>
/// merge_and_unload for the CLI: folds a LoRA / IA3 adapter into the base weights and removes the wrappers, so
/// the forward runs on the merged plain model alone. Prompt methods have no weights to fold and are refused.
/// </summary>
public static class AdapterMerge
{
    /// <summary>The merged base model (the same object as model.Base; the PeftModel still owns and disposes it).</summary>
    public static PretrainedModel MergeAndUnload(PeftModel model)
    {
        if (model.Config.IsPromptLearning)
            throw new PeftOnnxException($"--merge: {model.Config.PeftType} is a prompt method; only LORA and IA3 adapters can be merged into the base weights");
        if (model.Tuner is not IMergeableTuner mergeable)
            throw new PeftOnnxException($"--merge: a {model.Config.PeftType} adapter cannot be merged into the base weights");
        return mergeable.MergeAndUnload();
    }
}
