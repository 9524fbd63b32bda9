namespace Peft.Onnx.Core.Onnx;

/// <summary>How a multi-adapter export holds its adapters' LoRA A and B per module (adapters.json's "lora_layout").</summary>
public enum LoraStackLayout
{
    /// <summary>
    /// A zero row, then every adapter's A rows ([rank, in], as PEFT stores lora_A) one after another, [1 + sum of ranks, in],
    /// and likewise B^T with the scaling folded in, [1 + sum of ranks, out]: no base slot and no rank padding. A row's rows
    /// are the row of a small [slots, largest rank] index table (<see cref="AdapterStackKind.LoraRows"/>) its adapter index
    /// picks, padded with 0 (the zero row).
    /// </summary>
    Rows,

    /// <summary>[slots, in, r] and [slots, r, out], ranks padded to the largest and a zero base slot last; a row's branch is x @ A[index] @ B[index].</summary>
    Gather,
}
