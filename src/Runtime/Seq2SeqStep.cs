namespace Peft.Onnx.Runtime;

/// <summary>One decoder run: logits [batch, seq, vocab] and the self-attention cache including this step.</summary>
public sealed record Seq2SeqStep(float[] Logits, long[] LogitsShape, KeyValueCache Present);
