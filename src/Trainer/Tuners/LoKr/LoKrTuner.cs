using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Tuners.LoKr;

/// <summary>PEFT's LoKrModel: wraps every target nn.Linear with a <see cref="LoKrLayer"/> and freezes the base.</summary>
public sealed class LoKrTuner(PretrainedModel model, LoKrConfig config)
    : InjectedTuner<LoKrLayer>(model, config, target => new LoKrLayer(target, config, () => model.Training, model.WordEmbeddings.device));
