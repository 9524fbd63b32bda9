namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// A token matched verbatim in the input before the subword model runs (Hugging Face's added/special tokens).
/// <see cref="LStrip"/>/<see cref="RStrip"/> remove the whitespace next to it on that side; Hugging Face slow
/// tokenizers strip both sides for special tokens declared as plain strings.
/// </summary>
internal sealed record AddedToken(string Content, int Id, bool Special, bool LStrip = false, bool RStrip = false, bool SingleWord = false);
