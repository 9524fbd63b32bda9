using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Tuners.Ia3;

/// <summary>
/// PEFT 0.7.1's IA3Model: wraps every target linear with an <see cref="Ia3Layer"/> (feed-forward or not as
/// feedforward_modules says) and freezes the base.
/// </summary>
public sealed class Ia3Tuner(PretrainedModel model, Ia3Config config)
    : InjectedTuner<Ia3Layer>(model, config, target => new Ia3Layer(target, config.InitIa3Weights, model.WordEmbeddings.device))
{
    public Ia3Config Ia3Config => (Ia3Config)Config;
}
