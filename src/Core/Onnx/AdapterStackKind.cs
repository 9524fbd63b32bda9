namespace Peft.Onnx.Core.Onnx;

/// <summary>
/// The per-adapter tensors a multi-adapter export stacks per module, and how each is named: <c>{module path}{suffix}</c>.
/// The vectors (and LoRA in the gather layout) lie along a leading axis of slots (adapters, then the base slot last);
/// LoRA in the row layout puts the adapters' ranks one after another instead (see <see cref="LoraStackLayout"/>).
/// </summary>
public enum AdapterStackKind
{
    /// <summary>lora_A: transposed, [slots, in, r] (gather layout), or as PEFT stores it after a zero row, [1 + sum of ranks, in] (row layout).</summary>
    LoraA,

    /// <summary>lora_B transposed with the scaling folded in: [slots, r, out] (gather layout) or after a zero row, [1 + sum of ranks, out] (row layout).</summary>
    LoraB,

    /// <summary>lora_B's bias times the scaling, [slots, out].</summary>
    LoraBias,

    /// <summary>DoRA's constant per-output factor, [slots, out].</summary>
    DoraScale,

    /// <summary>IA3's vector, [slots, width] (width: in for feed-forward modules, out otherwise).</summary>
    Ia3,

    /// <summary>Per slot, the rows of the row layout's LoRA stacks it owns, padded with 0 (the zero row), [slots, largest rank], float32; shared by the modules of one row layout.</summary>
    LoraRows,
}
