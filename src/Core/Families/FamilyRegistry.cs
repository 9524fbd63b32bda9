using System.Collections.Frozen;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Core.Families;

/// <summary>
/// The supported model_types, each with its family's facts. Adding a family adds one line here (plus its folder
/// beside this file, its Trainer model and its Exporter graph).
/// </summary>
public static class FamilyRegistry
{
    /// <summary>Every supported family, in the order messages list them.</summary>
    public static IReadOnlyList<ModelFamily> All { get; } =
    [
        BloomFamily.Instance,
        Gpt2Family.Instance,
        OptFamily.Instance,
        LlamaFamily.Instance,
        T5Family.T5,
        T5Family.MT5,
    ];

    private static readonly FrozenDictionary<string, ModelFamily> ByModelType = All.ToFrozenDictionary(f => f.ModelType, StringComparer.Ordinal);

    /// <summary>The family of config.json's model_type, null when it is not supported.</summary>
    public static ModelFamily? Find(string modelType) => ByModelType.GetValueOrDefault(modelType);

    /// <summary>The supported model_types as messages list them ("bloom, gpt2, ...").</summary>
    public static string ModelTypeList { get; } = string.Join(", ", All.Select(f => f.ModelType));

    /// <summary>The tokenizer classes the families ship, each once.</summary>
    internal static IReadOnlyList<TokenizerClassDefaults> TokenizerClasses { get; } = All.Select(f => f.Tokenizer).Distinct().ToArray();
}
