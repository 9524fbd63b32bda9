namespace Peft.Onnx.Trainer.Inference;

/// <summary>
/// A TorchSharp forward: the base model folder, optionally a saved adapter (merged into the weights first with
/// <see cref="Merge"/>), and the device choice (cpu, cuda or auto).
/// </summary>
public sealed record TorchForwardRequest(string BaseDir, string? AdapterDir, bool Merge, string Device);
