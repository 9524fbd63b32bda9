using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>torch.nn.utils.clip_grad_norm_(parameters, max_norm) with the 2-norm: returns the total norm before clipping.</summary>
public static class GradientClipping
{
    public static double ClipGradNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        var norms = stack(grads.Select(g => g.detach().to(float32).norm()).ToArray());
        double total = norms.norm().item<float>();
        double coef = maxNorm / (total + 1e-6);
        if (coef < 1)
            foreach (var g in grads) g.TimesInPlace(coef);
        return total;
    }
}
