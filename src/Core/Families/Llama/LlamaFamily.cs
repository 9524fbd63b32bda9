using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Core.Families;

/// <summary>LLaMA (model_type "llama"): RoPE fed as position_ids, grouped-query attention, RMSNorm.</summary>
public sealed class LlamaFamily : ModelFamily<LlamaConfig>
{
    public static readonly LlamaFamily Instance = new();

    private LlamaFamily() { }

    public override string ModelType => "llama";
    protected override Architecture Create(LlamaConfig config) => new LlamaArchitecture(config);

    public override IReadOnlyList<string> LoraTargets { get; } = ["q_proj", "v_proj"];
    public override IReadOnlyList<string> Ia3Targets { get; } = ["k_proj", "v_proj", "down_proj"];
    public override IReadOnlyList<string> Ia3Feedforward { get; } = ["down_proj"];
    public override IReadOnlyList<string> AttentionModules { get; } = ["self_attn"];

    public override bool TakesPositionIds => true;

    /// <summary>LlamaTokenizer (legacy): bos prepended, clean-up off; the fast class rebuilds its post-processor.</summary>
    internal override TokenizerClassDefaults Tokenizer { get; } = new("LlamaTokenizer", "<s>", "</s>", "<unk>", null,
        WrapsStringTokens: true, AddBosDefault: true, AddEosDefault: false, CleanUpDefault: false, ExtraIdsDefault: 0)
    {
        SlowFile = "tokenizer.model",
        IsSentencePiece = true,
        RebuildsPostProcessor = true,
    };
}
