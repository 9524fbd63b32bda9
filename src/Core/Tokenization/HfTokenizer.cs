namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// A Hugging Face tokenizer loaded from a checkpoint folder, giving the ids and text that transformers gives:
/// tokenizer.json (fast format: byte-level BPE, sentencepiece-style BPE, Unigram) or the slow files
/// (vocab.json + merges.txt, spiece.model, tokenizer.model) with tokenizer_config.json / special_tokens_map.json.
/// Special-token text in the input ("&lt;/s&gt;") is matched as that token, as transformers does.
/// </summary>
public sealed class HfTokenizer
{
    private readonly TokenizerParts _parts;
    private readonly AddedTokenSplitter _splitter;

    internal HfTokenizer(TokenizerParts parts)
    {
        _parts = parts;
        _splitter = new AddedTokenSplitter(parts.AddedTokens);
    }

    /// <summary>
    /// Loads the tokenizer in <paramref name="dir"/>: tokenizer.json when present, else vocab.json + merges.txt,
    /// spiece.model or tokenizer.model. Throws <see cref="PeftOnnxException"/> naming the file on bad input.
    /// </summary>
    public static HfTokenizer FromFolder(string dir) => TokenizerFolder.Load(dir);

    /// <summary>"byte-level-bpe", "sentencepiece-bpe" or "sentencepiece-unigram".</summary>
    public string Kind => _parts.Kind;

    /// <summary>Number of ids, added tokens included (transformers' len(tokenizer)).</summary>
    public int VocabSize => _parts.VocabSize;

    public int? BosTokenId => _parts.BosId;
    public int? EosTokenId => _parts.EosId;
    public int? PadTokenId => _parts.PadId;
    public int? UnkTokenId => _parts.UnkId;

    /// <summary>transformers' <c>tokenizer(text, add_special_tokens=...)["input_ids"]</c>.</summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (_parts.PrefixSpaceBeforeText) text = " " + text;
        var ids = new List<int>();
        try
        {
            foreach (var chunk in _splitter.Split(text))
            {
                if (chunk.Token != null) ids.Add(chunk.Token.Id);
                else _parts.Encoder.Encode(chunk.Text, chunk.AtTextStart, ids);
            }
        }
        catch (System.Text.RegularExpressions.RegexMatchTimeoutException ex)
        {
            throw new PeftOnnxException($"tokenizer regex {MessageText.Quote(ex.Pattern)} took over {ex.MatchTimeout.TotalSeconds:0.#} s on a {text.Length}-character text (a pattern that backtracks catastrophically?)");
        }
        if (addSpecialTokens) _parts.Template.Apply(ids);
        return ids;
    }

    /// <summary>transformers' <c>tokenizer.decode(ids, skip_special_tokens=...)</c>.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = new List<int>();
        foreach (int id in ids)
        {
            if (id < 0)
                throw new PeftOnnxException($"token id {id} is negative: expected an id in 0..{_parts.VocabSize - 1}");
            // Models often pad their embedding beyond the tokenizer (e.g. to a multiple of 64) and can
            // generate those ids; Hugging Face's fast tokenizers decode them to nothing, so do we.
            if (id >= _parts.VocabSize) continue;
            if (!(skipSpecialTokens && _parts.SpecialIds.Contains(id))) kept.Add(id);
        }
        string text = kept.Count == 0 ? "" : _parts.Decoder.Decode(kept);
        return _parts.CleanUpSpaces ? TokenizationSpaces.CleanUp(text) : text;
    }
}
