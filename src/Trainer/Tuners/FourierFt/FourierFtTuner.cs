using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Tuners.FourierFt;

/// <summary>PEFT's FourierFTModel: wraps every target linear (nn.Linear or Conv1D) with a <see cref="FourierFtLayer"/> and freezes the base.</summary>
public sealed class FourierFtTuner(PretrainedModel model, FourierFtConfig config)
    : InjectedTuner<FourierFtLayer>(model, config, target => new FourierFtLayer(target, config, model.WordEmbeddings.device));
