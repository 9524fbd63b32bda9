using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Byte-level BPE (vocab.json + merges.txt or a tokenizer.json BPE model with ByteLevel) on Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> with ByteLevel on.
/// Words are split here (GPT-2's regex or a tokenizer.json Split pattern) and handed to ML one by one, so text
/// between pattern matches is kept as its own word like Hugging Face's "Isolated" split does.
/// </summary>
internal sealed partial class ByteLevelBpeEncoder : IChunkEncoder
{
    private readonly BpeTokenizer _bpe;
    private readonly Regex? _wordPattern;
    private readonly bool _prefixSpacePerChunk;

    /// <param name="vocabulary">Token (in byte-alphabet characters) to id.</param>
    /// <param name="merges">"left right" pairs, highest priority first.</param>
    /// <param name="wordPattern">How text is cut into words before BPE; null: the chunk is one word.</param>
    /// <param name="prefixSpacePerChunk">tokenizers' ByteLevel add_prefix_space: a space before each chunk not starting with one.</param>
    public ByteLevelBpeEncoder(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<string> merges, Regex? wordPattern, bool prefixSpacePerChunk)
    {
        _bpe = BpeTokenizer.Create(new BpeOptions(vocabulary) { Merges = merges, ByteLevel = true });
        _wordPattern = wordPattern;
        _prefixSpacePerChunk = prefixSpacePerChunk;
    }

    /// <summary>GPT-2's pre-tokenizer pattern (also tokenizers' ByteLevel use_regex).</summary>
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    public static partial Regex Gpt2WordPattern();

    public void Encode(string chunk, bool atTextStart, List<int> ids)
    {
        if (_prefixSpacePerChunk && !chunk.StartsWith(' ')) chunk = " " + chunk;
        if (_wordPattern == null)
        {
            EncodeWord(chunk, ids);
            return;
        }
        int end = 0;
        foreach (Match match in _wordPattern.Matches(chunk))
        {
            if (match.Length == 0) continue;
            if (match.Index > end) EncodeWord(chunk[end..match.Index], ids);
            EncodeWord(match.Value, ids);
            end = match.Index + match.Length;
        }
        if (end < chunk.Length) EncodeWord(chunk[end..], ids);
    }

    private void EncodeWord(string word, List<int> ids) =>
        ids.AddRange(_bpe.EncodeToIds(word, considerPreTokenization: false, considerNormalization: false));
}
