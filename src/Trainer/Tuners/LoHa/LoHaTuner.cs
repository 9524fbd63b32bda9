using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Tuners.LoHa;

/// <summary>PEFT's LoHaModel: wraps every target nn.Linear with a <see cref="LoHaLayer"/> and freezes the base.</summary>
public sealed class LoHaTuner(PretrainedModel model, LoHaConfig config)
    : InjectedTuner<LoHaLayer>(model, config, target => new LoHaLayer(target, config, () => model.Training, model.WordEmbeddings.device));
