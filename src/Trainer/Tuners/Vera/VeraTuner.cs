using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Vera;

/// <summary>
/// PEFT's VeraModel: draws the shared projections once, wraps every target with a <see cref="VeraLayer"/> slicing
/// them, and saves / loads them as base_model.vera_A / base_model.vera_B beside the per-layer vectors.
/// </summary>
public sealed class VeraTuner : InjectedTuner<VeraLayer>
{
    private readonly VeraProjections _projections;

    public VeraTuner(PretrainedModel model, VeraConfig config) : this(model, config, new VeraProjections(config, config.FindTargets(model.Architecture), model.WordEmbeddings.device)) { }

    private VeraTuner(PretrainedModel model, VeraConfig config, VeraProjections projections)
        : base(model, config, target => new VeraLayer(target, config, projections, () => model.Training, model.WordEmbeddings.device))
    {
        _projections = projections;
    }

    protected override IReadOnlyList<(string Key, Tensor Value)> SharedTensors =>
        [(VeraConfig.SharedAKey, _projections.A), (VeraConfig.SharedBKey, _projections.B)];

    protected override void DisposeShared() => _projections.Dispose();
}
