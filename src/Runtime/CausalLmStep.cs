namespace Peft.Onnx.Runtime;

/// <summary>One run of a decoder-only graph: logits [batch, seq, vocab] and the present cache.</summary>
public sealed record CausalLmStep(float[] Logits, long[] LogitsShape, KeyValueCache Present);
