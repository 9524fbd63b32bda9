using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Tuners.Boft;

/// <summary>PEFT's BOFTModel: wraps every target nn.Linear with a <see cref="BoftLayer"/> and freezes the base.</summary>
public sealed class BoftTuner(PretrainedModel model, BoftConfig config)
    : InjectedTuner<BoftLayer>(model, config, target => new BoftLayer(target, config, () => model.Training, model.WordEmbeddings.device));
