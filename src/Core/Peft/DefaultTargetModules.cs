using System.Collections.Frozen;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT 0.7.1's per-family defaults used when an adapter config leaves target_modules (or IA3's
/// feedforward_modules) null: TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
/// TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING and TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING
/// (peft/utils/other.py), for the families this project supports, keyed by config.json's model_type.
/// </summary>
public static class DefaultTargetModules
{
    public static readonly FrozenDictionary<string, IReadOnlyList<string>> Lora = Freeze(new()
    {
        ["bloom"] = ["query_key_value"],
        ["gpt2"] = ["c_attn"],
        ["opt"] = ["q_proj", "v_proj"],
        ["llama"] = ["q_proj", "v_proj"],
        ["t5"] = ["q", "v"],
        ["mt5"] = ["q", "v"],
    });

    public static readonly FrozenDictionary<string, IReadOnlyList<string>> Ia3 = Freeze(new()
    {
        ["bloom"] = ["query_key_value", "mlp.dense_4h_to_h"],
        ["gpt2"] = ["c_attn", "mlp.c_proj"],
        ["opt"] = ["q_proj", "k_proj", "fc2"],
        ["llama"] = ["k_proj", "v_proj", "down_proj"],
        ["t5"] = ["k", "v", "wo"],
        ["mt5"] = ["k", "v", "wi_1"],
    });

    /// <summary>mT5's list is empty in PEFT 0.7.1: its wi_1 target scales outputs, not inputs.</summary>
    public static readonly FrozenDictionary<string, IReadOnlyList<string>> Ia3Feedforward = Freeze(new()
    {
        ["bloom"] = ["mlp.dense_4h_to_h"],
        ["gpt2"] = ["mlp.c_proj"],
        ["opt"] = ["fc2"],
        ["llama"] = ["down_proj"],
        ["t5"] = ["wo"],
        ["mt5"] = [],
    });

    private static FrozenDictionary<string, IReadOnlyList<string>> Freeze(Dictionary<string, string[]> map) =>
        map.ToFrozenDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)Array.AsReadOnly(kv.Value));
}
