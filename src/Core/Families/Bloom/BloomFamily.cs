using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Core.Families;

/// <summary>BLOOM (model_type "bloom"): ALiBi, fused query_key_value, positions from the mask.</summary>
public sealed class BloomFamily : ModelFamily<BloomConfig>
{
    public static readonly BloomFamily Instance = new();

    private BloomFamily() { }

    public override string ModelType => "bloom";
    protected override Architecture Create(BloomConfig config) => new BloomArchitecture(config);

    public override IReadOnlyList<string> LoraTargets { get; } = ["query_key_value"];
    public override IReadOnlyList<string> Ia3Targets { get; } = ["query_key_value", "mlp.dense_4h_to_h"];
    public override IReadOnlyList<string> Ia3Feedforward { get; } = ["mlp.dense_4h_to_h"];
    public override IReadOnlyList<string> AttentionModules { get; } = ["self_attention"];

    /// <summary>PEFT 0.7.1's bloom_model_postprocess_past_key_value, for BLOOM's [heads, head_dim, nv] key cache.</summary>
    public override PrefixLayout PrefixLayout => PrefixLayout.KeysFirstRegrouped;

    /// <summary>BloomTokenizerFast (tokenizer.json only).</summary>
    internal override TokenizerClassDefaults Tokenizer { get; } = new("BloomTokenizerFast", "<s>", "</s>", "<unk>", "<pad>",
        WrapsStringTokens: false, AddBosDefault: false, AddEosDefault: false, CleanUpDefault: true, ExtraIdsDefault: 0);
}
