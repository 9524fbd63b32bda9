using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Lora;

/// <summary>
/// PEFT 0.7.1's LoraModel: wraps every target linear with a <see cref="LoraLayer"/>, freezes the base, and with
/// bias = "all" unfreezes (and saves) every base tensor named *bias*.
/// </summary>
public sealed class LoraTuner : InjectedTuner<LoraLayer>
{
    private readonly IReadOnlyList<string> _trainableBiases;

    public LoraTuner(PretrainedModel model, LoraConfig config)
        : base(model, config, target => new LoraLayer(target, config, model.Linears[target.Path], () => model.Training))
    {
        LoraConfig = (LoraConfig)Config;
        // _mark_only_adapters_as_trainable: bias = "all" unfreezes every parameter whose name contains "bias";
        // "lora_only" finds no bias on 0.7.1's LoRA layers (see LoraConfig), so it unfreezes nothing.
        _trainableBiases = LoraConfig.Bias == "all" ? AllBiasNames() : [];
        foreach (var name in _trainableBiases) model.Parameters[name].requires_grad_(true);
    }

    public LoraConfig LoraConfig { get; }

    protected override IReadOnlyList<string> TrainableBaseNames => _trainableBiases;

    protected override IEnumerable<(string Name, Tensor Value, bool Loads)> SavedBaseTensors() => LoraConfig.Bias == "all" ? AllBiasTensors() : [];
}
