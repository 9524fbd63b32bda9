namespace Peft.Onnx.Core.Data;

/// <summary>Token ids the data pipeline needs: eos ends every target, pad fills batches.</summary>
public sealed record SpecialIds(long Eos, long Pad);
