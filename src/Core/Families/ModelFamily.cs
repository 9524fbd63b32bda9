using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Core.Families;

/// <summary>
/// What code outside a family's folder may know about one config.json model_type: its config record, its
/// architecture, PEFT's default targets, how a prefix is laid out, whether its forward takes position_ids, the
/// tokenizer class it ships and its ORT GenAI model type. Facts that depend on a config's values (context window,
/// decoder start token, input-embedding width) are members of the config record, which also names its family.
/// </summary>
public abstract class ModelFamily
{
    /// <summary>config.json's model_type.</summary>
    public abstract string ModelType { get; }

    /// <summary>The record config.json is read into.</summary>
    public abstract Type ConfigType { get; }

    /// <summary>The state dict and linear modules that <paramref name="config"/> implies.</summary>
    public abstract Architecture Architecture(ModelConfig config);

    /// <summary>PEFT 0.7.1's LoRA target_modules when an adapter config leaves them null.</summary>
    public abstract IReadOnlyList<string> LoraTargets { get; }

    /// <summary>PEFT 0.7.1's IA3 target_modules when an adapter config leaves them null.</summary>
    public abstract IReadOnlyList<string> Ia3Targets { get; }

    /// <summary>PEFT 0.7.1's IA3 feedforward_modules when an adapter config leaves them null.</summary>
    public abstract IReadOnlyList<string> Ia3Feedforward { get; }

    /// <summary>
    /// The names of the attention modules, whose linear layers (projections in and out) an int4 export keeps at int8
    /// by default: a weight belongs to one when a segment of its path is one of these names.
    /// </summary>
    public abstract IReadOnlyList<string> AttentionModules { get; }

    /// <summary>How PEFT 0.7.1 turns a prefix-tuning prompt into the keys and values each layer reads.</summary>
    public virtual PrefixLayout PrefixLayout => PrefixLayout.PairPerLayer;

    /// <summary>True when the decoder-only forward takes position_ids (otherwise positions come from the mask or are not learned).</summary>
    public virtual bool TakesPositionIds => false;

    /// <summary>model.type in genai_config.json.</summary>
    public virtual string GenAiModelType => "decoder";

    /// <summary>The tokenizer class the family's checkpoints name, with the defaults its __init__ applies.</summary>
    internal abstract TokenizerClassDefaults Tokenizer { get; }

    public override string ToString() => ModelType;
}
