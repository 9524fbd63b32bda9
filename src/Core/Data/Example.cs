namespace Peft.Onnx.Core.Data;

/// <summary>
/// One tokenized row. Causal: <see cref="InputIds"/> = prompt + target, <see cref="Labels"/> = -100 on the prompt then the
/// target; <see cref="PromptIds"/> is what generation starts from. Seq2seq: <see cref="InputIds"/> = text + eos (the
/// encoder input, also the generation input), <see cref="Labels"/> = label + eos.
/// </summary>
public sealed record Example(long[] InputIds, long[] Labels, long[] PromptIds, string Label);
