using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Boft;

/// <summary>
/// PEFT's BOFTModel: wraps every target nn.Linear with a <see cref="BoftLayer"/> and freezes the base. bias = "all"
/// unfreezes (and saves) every base tensor named *bias*, as LoRA's; "boft_only" unfreezes the wrapped layers' own
/// biases, which get_peft_model_state_dict then looks for under the wrapper ("{module}.bias") instead of
/// "{module}.base_layer.bias" and so never saves.
/// </summary>
public sealed class BoftTuner : InjectedTuner<BoftLayer>
{
    private readonly IReadOnlyList<string> _trainableBiases;
    private readonly bool _savesBiases;

    public BoftTuner(PretrainedModel model, BoftConfig config)
        : base(model, config, target => new BoftLayer(target, config, () => model.Training, model.WordEmbeddings.device))
    {
        _savesBiases = config.Bias == "all";
        _trainableBiases = config.Bias switch
        {
            "all" => AllBiasNames(),
            "boft_only" => Layers.Where(l => l.Target.Linear.HasBias).Select(l => l.Target.Linear.BiasName).ToList(),
            _ => [],
        };
        foreach (var name in _trainableBiases) model.Parameters[name].requires_grad_(true);
    }

    protected override IReadOnlyList<string> TrainableBaseNames => _trainableBiases;

    protected override IEnumerable<(string Name, Tensor Value, bool Loads)> SavedBaseTensors() => _savesBiases ? AllBiasTensors() : [];
}
