using Peft.Onnx.Exporter.Graphs;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// What one run of the base graph on a decoder-only soft prompt gives the export: the virtual tokens' keys/values
/// (baked as a constant prefix) and the logits at the last virtual token [vocab], which score the first real label in
/// PEFT's loss (written beside the graphs as <see cref="Core.Onnx.CausalLmContract.VirtualTokenLogitsFile"/>).
/// </summary>
public sealed record BakedSoftPrompt(AttentionPrefix Prefix, float[] LastVirtualTokenLogits);
