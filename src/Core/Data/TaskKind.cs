namespace Peft.Onnx.Core.Data;

/// <summary>Decoder-only (the PEFT causal-LM guide) or encoder-decoder (the seq2seq guides).</summary>
public enum TaskKind { CausalLm, Seq2SeqLm }
