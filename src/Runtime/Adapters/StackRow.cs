namespace Peft.Onnx.Runtime.Adapters;

/// <summary>A slot's values of one stack; <see cref="Rank"/> is the adapter's rank for LoRA A/B rows (0 for vectors).</summary>
internal sealed record StackRow(float[] Values, int Rank);
