namespace Peft.Onnx.Core.Tokenization;

/// <summary>Turns ids (special tokens already removed when asked to skip them) back into text, the way the
/// matching Hugging Face tokenizer does before its optional clean-up of spaces.</summary>
internal interface ITokenDecoder
{
    string Decode(IReadOnlyList<int> ids);
}
