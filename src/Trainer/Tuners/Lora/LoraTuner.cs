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
        _trainableBiases = LoraConfig.Bias == "all"
            ? model.Parameters.Distinct().Select(p => p.Name).Where(n => n.Contains("bias", StringComparison.Ordinal) && SavedModuleOf(n) is null).ToList()
            : [];
        foreach (var name in _trainableBiases) model.Parameters[name].requires_grad_(true);
    }

    public LoraConfig LoraConfig { get; }

    protected override IReadOnlyList<string> TrainableBaseNames => _trainableBiases;

    /// <summary>
    /// bias = "all": get_peft_model_state_dict keeps every state_dict key containing "bias". A wrapped linear's bias
    /// is keyed under base_layer; inside a modules_to_save module both the original and the copy keys match too, and
    /// PEFT saves them (as ".original_module." and ".modules_to_save.") but cannot load them back.
    /// </summary>
    protected override IEnumerable<(string Name, Tensor Value, bool Loads)> SavedBaseTensors()
    {
        if (LoraConfig.Bias != "all") yield break;
        foreach (var name in Model.Parameters.Names.Where(n => n.Contains("bias", StringComparison.Ordinal)))
        {
            if (SavedModuleOf(name) is { } module)
            {
                var leaf = module.Leaf(name);
                yield return ($"{module.Module}.original_module.{leaf}", module.Originals.First(o => o.Name == name).Original, false);
                yield return ($"{module.Module}.modules_to_save.{leaf}", Model.Parameters[name], false);
            }
            else yield return (PeftNameOf(name), Model.Parameters[name], true);
        }
    }
}
