namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Turns a stretch of text that holds no added/special token into ids: normalization, pre-tokenization and the
/// subword model of one tokenizer kind.
/// </summary>
internal interface IChunkEncoder
{
    /// <param name="chunk">Text between added tokens (never empty).</param>
    /// <param name="atTextStart">Whether the chunk starts the whole input (Metaspace prepend_scheme "first").</param>
    /// <param name="ids">Receives the ids.</param>
    void Encode(string chunk, bool atTextStart, List<int> ids);
}
