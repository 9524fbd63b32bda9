using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Core.Families;

/// <summary>OPT (model_type "opt"): learned positions derived from the mask, optional embedding projections.</summary>
public sealed class OptFamily : ModelFamily<OptConfig>
{
    public static readonly OptFamily Instance = new();

    private OptFamily() { }

    public override string ModelType => "opt";
    protected override Architecture Create(OptConfig config) => new OptArchitecture(config);

    public override IReadOnlyList<string> LoraTargets { get; } = ["q_proj", "v_proj"];
    public override IReadOnlyList<string> Ia3Targets { get; } = ["q_proj", "k_proj", "fc2"];
    public override IReadOnlyList<string> Ia3Feedforward { get; } = ["fc2"];
    public override IReadOnlyList<string> AttentionModules { get; } = ["self_attn"];

    /// <summary>OPT checkpoints ship GPT2Tokenizer files.</summary>
    internal override TokenizerClassDefaults Tokenizer => Gpt2Family.ByteLevelBpeTokenizer;
}
