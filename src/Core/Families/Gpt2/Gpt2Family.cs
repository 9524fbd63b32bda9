using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Core.Families;

/// <summary>GPT-2 (model_type "gpt2"): learned positions fed as position_ids, Conv1D linears.</summary>
public sealed class Gpt2Family : ModelFamily<Gpt2Config>
{
    public static readonly Gpt2Family Instance = new();

    private Gpt2Family() { }

    public override string ModelType => "gpt2";
    protected override Architecture Create(Gpt2Config config) => new Gpt2Architecture(config);

    public override IReadOnlyList<string> LoraTargets { get; } = ["c_attn"];
    public override IReadOnlyList<string> Ia3Targets { get; } = ["c_attn", "mlp.c_proj"];
    public override IReadOnlyList<string> Ia3Feedforward { get; } = ["mlp.c_proj"];
    public override IReadOnlyList<string> AttentionModules { get; } = ["attn"];

    public override bool TakesPositionIds => true;

    internal override TokenizerClassDefaults Tokenizer => ByteLevelBpeTokenizer;

    /// <summary>GPT2Tokenizer (vocab.json + merges.txt; other families ship it too): nothing added unless add_bos_token.</summary>
    internal static readonly TokenizerClassDefaults ByteLevelBpeTokenizer = new("GPT2Tokenizer", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>", null,
        WrapsStringTokens: true, AddBosDefault: false, AddEosDefault: false, CleanUpDefault: true, ExtraIdsDefault: 0)
    {
        SlowFile = "vocab.json",
    };
}
