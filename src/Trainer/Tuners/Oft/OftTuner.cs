using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Tuners.Oft;

/// <summary>PEFT's OFTModel: wraps every target nn.Linear with an <see cref="OftLayer"/> and freezes the base.</summary>
public sealed class OftTuner(PretrainedModel model, OftConfig config)
    : InjectedTuner<OftLayer>(model, config, target => new OftLayer(target, config, () => model.Training, model.WordEmbeddings.device));
