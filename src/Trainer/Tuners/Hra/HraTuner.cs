using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Tuners.Hra;

/// <summary>PEFT's HRAModel: wraps every target nn.Linear with an <see cref="HraLayer"/> and freezes the base.</summary>
public sealed class HraTuner(PretrainedModel model, HraConfig config)
    : InjectedTuner<HraLayer>(model, config, target => new HraLayer(target, config, model.WordEmbeddings.device));
