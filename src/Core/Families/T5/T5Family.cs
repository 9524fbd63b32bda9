using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Core.Families;

/// <summary>
/// T5 (model_type "t5") and mT5 ("mt5"): one architecture, encoder-decoder with relative position buckets; they
/// differ in config defaults and in PEFT's IA3 targets.
/// </summary>
public sealed class T5Family : ModelFamily<T5Config>
{
    public static readonly T5Family T5 = new("t5", typeof(T5Config), ia3Targets: ["k", "v", "wo"], ia3Feedforward: ["wo"]);

    /// <summary>mT5's feedforward list is empty in PEFT 0.7.1: its wi_1 target scales outputs, not inputs.</summary>
    public static readonly T5Family MT5 = new("mt5", typeof(MT5Config), ia3Targets: ["k", "v", "wi_1"], ia3Feedforward: []);

    private readonly Type _configType;

    private T5Family(string modelType, Type configType, string[] ia3Targets, string[] ia3Feedforward)
    {
        ModelType = modelType;
        _configType = configType;
        Ia3Targets = Array.AsReadOnly(ia3Targets);
        Ia3Feedforward = Array.AsReadOnly(ia3Feedforward);
    }

    public override string ModelType { get; }
    public override Type ConfigType => _configType;
    protected override Architecture Create(T5Config config) => new T5Architecture(config);

    public override IReadOnlyList<string> LoraTargets { get; } = ["q", "v"];
    public override IReadOnlyList<string> Ia3Targets { get; }
    public override IReadOnlyList<string> Ia3Feedforward { get; }
    public override IReadOnlyList<string> AttentionModules { get; } = ["SelfAttention", "EncDecAttention"];

    /// <summary>GenAI names an encoder-decoder by its model_type.</summary>
    public override string GenAiModelType => ModelType;

    internal override TokenizerClassDefaults Tokenizer => SentencePieceTokenizer;

    /// <summary>T5Tokenizer (legacy): eos appended unless already last, 100 &lt;extra_id_N&gt; sentinels.</summary>
    private static readonly TokenizerClassDefaults SentencePieceTokenizer = new("T5Tokenizer", null, "</s>", "<unk>", "<pad>",
        WrapsStringTokens: false, AddBosDefault: false, AddEosDefault: true, CleanUpDefault: true, ExtraIdsDefault: 100)
    {
        SlowFile = "spiece.model",
        IsSentencePiece = true,
        EosOnlyIfAbsent = true,
        TrimsEveryLeadingSpace = true,
    };
}
