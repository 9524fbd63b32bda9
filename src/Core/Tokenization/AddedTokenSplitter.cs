namespace Peft.Onnx.Core.Tokenization;

/// <summary>A piece of the input: either plain text for the subword model or one added token.</summary>
internal readonly record struct TextChunk(string Text, AddedToken? Token, bool AtTextStart);

/// <summary>
/// Splits the input at added tokens, leftmost match first and the longest token at that position (Hugging Face's
/// Trie.split for slow tokenizers, LeftmostLongest Aho-Corasick for tokenizer.json), then applies each token's
/// lstrip/rstrip to its neighbours in order, as PreTrainedTokenizer.tokenize does. Empty text pieces are dropped.
/// </summary>
internal sealed class AddedTokenSplitter
{
    private readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenSplitter(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens.Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content, StringComparer.Ordinal).Select(g => g.First())
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
    }

    public List<TextChunk> Split(string text)
    {
        var pieces = new List<(string Text, AddedToken? Token, int Start)>();
        int pending = 0;
        for (int i = 0; i < text.Length;)
        {
            var token = LongestAt(text, i);
            if (token == null)
            {
                i++;
                continue;
            }
            if (i > pending) pieces.Add((text[pending..i], null, pending));
            pieces.Add((token.Content, token, i));
            i += token.Content.Length;
            pending = i;
        }
        if (pending < text.Length || pieces.Count == 0) pieces.Add((text[pending..], null, pending));

        for (int i = 0; i < pieces.Count; i++)
        {
            if (pieces[i].Token is not { } token) continue;
            if (token.RStrip && i + 1 < pieces.Count && pieces[i + 1].Token == null)
                pieces[i + 1] = pieces[i + 1] with { Text = PythonText.LStrip(pieces[i + 1].Text) };
            if (token.LStrip && i > 0 && pieces[i - 1].Token == null)
                pieces[i - 1] = pieces[i - 1] with { Text = PythonText.RStrip(pieces[i - 1].Text) };
        }

        return pieces.Where(p => p.Token != null || p.Text.Length > 0)
            .Select(p => new TextChunk(p.Text, p.Token, p.Start == 0)).ToList();
    }

    private AddedToken? LongestAt(string text, int start)
    {
        if (!_byFirstChar.TryGetValue(text[start], out var candidates)) return null;
        foreach (var token in candidates)
        {
            if (start + token.Content.Length > text.Length) continue;
            if (string.CompareOrdinal(text, start, token.Content, 0, token.Content.Length) != 0) continue;
            if (token.SingleWord && !IsWholeWord(text, start, token.Content.Length)) continue;
            return token;
        }
        return null;
    }

    private static bool IsWholeWord(string text, int start, int length)
    {
        static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
        bool leftOk = start == 0 || !IsWordChar(text[start - 1]) || !IsWordChar(text[start]);
        int end = start + length;
        bool rightOk = end == text.Length || !IsWordChar(text[end]) || !IsWordChar(text[end - 1]);
        return leftOk && rightOk;
    }
}
