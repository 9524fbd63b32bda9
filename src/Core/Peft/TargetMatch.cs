using Peft.Onnx.Core.Architectures;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// One linear module an injected adapter (LoRA, IA3) wraps, with what PEFT decides for it.
/// </summary>
/// <param name="Linear">The base module (path, in/out features, bias, Conv1D layout).</param>
/// <param name="Rank">LoRA's r for this module (rank_pattern or r); 0 for IA3.</param>
/// <param name="Alpha">LoRA's lora_alpha for this module (alpha_pattern or lora_alpha); 0 for IA3.</param>
/// <param name="Scaling">LoRA's scale of B @ A: alpha / r, or alpha / sqrt(r) with use_rslora; 0 for IA3.</param>
/// <param name="IsFeedforward">IA3: the vector scales the module's input (feed-forward) rather than its output.</param>
public sealed record TargetMatch(LinearSpec Linear, int Rank, double Alpha, double Scaling, bool IsFeedforward)
{
    public string Path => Linear.Path;
}
