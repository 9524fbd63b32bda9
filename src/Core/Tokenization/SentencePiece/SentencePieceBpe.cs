using System.Text;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// sentencepiece's BPE segmentation (bpe_model.cc) of already-normalized text: start from characters (user-defined
/// pieces kept whole), join the pair whose joined string is the highest-scoring piece, then split "unused" pieces
/// back into the pieces they were made from. Written here because Microsoft.ML.Tokenizers 2.0.1 breaks ties between
/// equal scores differently (LLaMA: " )))" gives "▁) ))" there, "▁ )))" in sentencepiece).
/// </summary>
internal sealed class SentencePieceBpe(SentencePieceModel model)
{
    private readonly string[] _userDefined = model.Pieces
        .Where(p => p.Type == SentencePieceType.UserDefined && p.Text.Length > 0)
        .Select(p => p.Text).OrderByDescending(t => t.Length).ToArray();

    /// <summary>The pieces of <paramref name="normalized"/>, as strings (unknown ones included verbatim).</summary>
    public List<string> Segment(string normalized)
    {
        var symbols = new List<string>();
        var frozen = new List<bool>();
        for (int i = 0; i < normalized.Length;)
        {
            int length = UserDefinedLengthAt(normalized, i);
            frozen.Add(length > 0);
            if (length == 0) length = char.IsHighSurrogate(normalized[i]) && i + 1 < normalized.Length ? 2 : 1;
            symbols.Add(normalized.Substring(i, length));
            i += length;
        }

        var unusedParts = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        var merged = BpeMerger.Merge(symbols, frozen, PairScore, (left, right, joined) =>
        {
            if (model.TypeOf(model.PieceToId(joined)) == SentencePieceType.Unused) unusedParts[joined] = (left, right);
        });

        var pieces = new List<string>(merged.Count);
        foreach (var piece in merged) Resegment(piece, unusedParts, pieces);
        return pieces;
    }

    /// <summary>Only normal, user-defined and unused pieces take part in merges (sentencepiece's pieces_ table).</summary>
    private double? PairScore(string left, string right)
    {
        string joined = left + right;
        if (!model.Contains(joined)) return null;
        int id = model.PieceToId(joined);
        var piece = model.Pieces[id];
        return piece.Type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused
            ? piece.Score
            : null;
    }

    private void Resegment(string piece, Dictionary<string, (string Left, string Right)> unusedParts, List<string> output)
    {
        if (model.Contains(piece) && model.TypeOf(model.PieceToId(piece)) == SentencePieceType.Unused &&
            unusedParts.TryGetValue(piece, out var parts))
        {
            Resegment(parts.Left, unusedParts, output);
            Resegment(parts.Right, unusedParts, output);
        }
        else output.Add(piece);
    }

    private int UserDefinedLengthAt(string text, int start)
    {
        foreach (var symbol in _userDefined)
        {
            if (start + symbol.Length <= text.Length && string.CompareOrdinal(text, start, symbol, 0, symbol.Length) == 0)
                return symbol.Length;
        }
        return 0;
    }
}
