namespace Peft.Onnx.Core.Onnx;

/// <summary>
/// The per-adapter tensors a multi-adapter export stacks per module along a leading axis of slots (adapters, then the
/// base slot last), and how each is named: <c>{module path}{suffix}</c>.
/// </summary>
public enum AdapterStackKind
{
    /// <summary>lora_A transposed, [slots, in, r].</summary>
    LoraA,

    /// <summary>lora_B transposed with the scaling folded in, [slots, r, out].</summary>
    LoraB,

    /// <summary>lora_B's bias times the scaling, [slots, out].</summary>
    LoraBias,

    /// <summary>DoRA's constant per-output factor, [slots, out].</summary>
    DoraScale,

    /// <summary>IA3's vector, [slots, width] (width: in for feed-forward modules, out otherwise).</summary>
    Ia3,
}
