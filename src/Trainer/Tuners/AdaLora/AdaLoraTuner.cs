using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.AdaLora;

/// <summary>
/// PEFT's AdaLoraModel: wraps every target with an <see cref="AdaLoraLayer"/>; with labels its forward adds
/// orth_reg_weight x the mean of every lora_A / lora_B orthogonality norm to the loss (eval mode too).
/// </summary>
public sealed class AdaLoraTuner(PretrainedModel model, AdaLoraConfig config)
    : InjectedTuner<AdaLoraLayer>(model, config, target => new AdaLoraLayer(target, config, () => model.Training, model.WordEmbeddings.device)),
      IRegularizedTuner
{
    public Tensor Regularizer()
    {
        if (config.OrthRegWeight <= 0)
            throw new PeftOnnxException($"{config.SourcePath}: orth_reg_weight = {config.OrthRegWeight.ToString(System.Globalization.CultureInfo.InvariantCulture)} is invalid (expected a number > 0: PEFT's AdaLoRA forward with labels refuses it)");
        using var scope = NewDisposeScope();
        // named_parameters order: per module lora_A then lora_B, modules in model order; summed one by one as PEFT does.
        Tensor? sum = null;
        int count = 0;
        foreach (var layer in Layers)
            foreach (var norm in layer.OrthogonalityNorms())
            {
                sum = sum is null ? norm : sum.Plus(norm);
                count++;
            }
        if (sum is null) return zeros(1).squeeze().MoveToOuterDisposeScope();
        return sum.Over(count).Times(config.OrthRegWeight).MoveToOuterDisposeScope();
    }
}
