namespace Peft.Onnx.Runtime.Batching;

/// <summary>A token one row of a continuous batch produced; <paramref name="Finished"/> when it was the row's last.</summary>
public readonly record struct RowToken(BatchRow Row, int TokenId, bool Finished);
