namespace Peft.Onnx.Runtime.Adapters;

/// <summary>
/// One adapter's rows for the stacks of a multi-adapter export, computed exactly as the exporter stacks them: per
/// stacked tensor name, the slot's values at the adapter's own rank (A transposed [in, r]; B transposed [r, out] with
/// the scaling folded in; lora_B's bias times the scaling; IA3's vector).
/// </summary>
internal sealed record AdapterRows(string Method, int Rank, IReadOnlyDictionary<string, StackRow> Rows);
