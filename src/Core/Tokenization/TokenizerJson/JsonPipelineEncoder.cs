namespace Peft.Onnx.Core.Tokenization;

/// <summary>tokenizer.json's steps for one stretch of text between added tokens: normalizer, then the Metaspace
/// pre-tokenizer when there is one, then the model on each word.</summary>
internal sealed class JsonPipelineEncoder(NormalizerChain normalizer, Metaspace? metaspace, Action<string, bool, List<int>> model) : IChunkEncoder
{
    public void Encode(string chunk, bool atTextStart, List<int> ids)
    {
        string normalized = normalizer.Normalize(chunk);
        if (normalized.Length == 0) return;
        if (metaspace == null)
        {
            model(normalized, atTextStart, ids);
            return;
        }
        foreach (var word in metaspace.Words(normalized, atTextStart)) model(word, atTextStart, ids);
    }
}
