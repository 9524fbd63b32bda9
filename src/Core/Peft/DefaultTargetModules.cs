using System.Collections.Frozen;
using Peft.Onnx.Core.Families;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT 0.7.1's per-family defaults used when an adapter config leaves target_modules (or IA3's
/// feedforward_modules) null: TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
/// TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING and TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING
/// (peft/utils/other.py) for the supported families, keyed by config.json's model_type. Each family states its own.
/// </summary>
public static class DefaultTargetModules
{
    public static readonly FrozenDictionary<string, IReadOnlyList<string>> Lora = ByModelType(f => f.LoraTargets);

    public static readonly FrozenDictionary<string, IReadOnlyList<string>> Ia3 = ByModelType(f => f.Ia3Targets);

    public static readonly FrozenDictionary<string, IReadOnlyList<string>> Ia3Feedforward = ByModelType(f => f.Ia3Feedforward);

    private static FrozenDictionary<string, IReadOnlyList<string>> ByModelType(Func<ModelFamily, IReadOnlyList<string>> targets) =>
        FamilyRegistry.All.ToFrozenDictionary(f => f.ModelType, targets);
}
