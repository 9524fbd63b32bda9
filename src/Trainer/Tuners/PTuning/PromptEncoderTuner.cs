using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.PromptLearning;

namespace Peft.Onnx.Trainer.Tuners.PTuning;

/// <summary>
/// P-tuning: the prompt is <see cref="PromptEncoder"/>'s output, placed like prompt tuning's (<see cref="SoftPromptTuner"/>).
/// PEFT saves only that output ("prompt_embeddings"); a loaded adapter uses those rows directly.
/// </summary>
public sealed class PromptEncoderTuner : SoftPromptTuner
{
    public PromptEncoderTuner(PretrainedModel model, PromptEncoderConfig config)
        : base(model, config.WithModelDefaults(model.Config))
    {
        Attach(new PromptEncoder((PromptEncoderConfig)PromptConfig));
    }
}
