using System.Text;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// sentencepiece's Normalizer::Normalize: charsmap rules, dropping leading/trailing/repeated spaces
/// (remove_extra_whitespaces), the dummy "▁" prefix and escaping ' ' as "▁". Done here rather than by
/// Microsoft.ML.Tokenizers because its public Normalize ignores the precompiled charsmap.
/// Works on UTF-8 bytes like the original, so rules that span several characters apply unchanged.
/// </summary>
internal sealed class SentencePieceTextNormalizer
{
    private static readonly byte[] SpaceSymbol = "\u2581"u8.ToArray();
    private static readonly byte[] ReplacementCharacter = "\uFFFD"u8.ToArray();

    private readonly PrecompiledCharsMap? _charsMap;
    private readonly byte[][] _userDefined;  // longest first: matched verbatim, never normalized
    private readonly bool _addDummyPrefix, _removeExtraWhitespaces, _escapeWhitespaces, _whitespaceAsSuffix;

    public SentencePieceTextNormalizer(SentencePieceModel model)
    {
        _charsMap = PrecompiledCharsMap.Parse(model.CharsMap);
        _userDefined = model.Pieces.Where(p => p.Type == SentencePieceType.UserDefined && p.Text.Length > 0)
            .Select(p => Encoding.UTF8.GetBytes(p.Text)).OrderByDescending(b => b.Length).ToArray();
        _addDummyPrefix = model.AddDummyPrefix;
        _removeExtraWhitespaces = model.RemoveExtraWhitespaces;
        _escapeWhitespaces = model.EscapeWhitespaces;
        _whitespaceAsSuffix = model.TreatWhitespaceAsSuffix;
    }

    public string Normalize(string text)
    {
        ReadOnlySpan<byte> input = Encoding.UTF8.GetBytes(text);
        var output = new List<byte>(input.Length * 3 / 2 + 4);

        if (_removeExtraWhitespaces)
        {
            while (!input.IsEmpty)
            {
                int consumed = NormalizePrefix(input, out var piece);
                if (!(piece.Length == 1 && piece[0] == (byte)' ')) break;
                input = input[consumed..];
            }
        }
        if (input.IsEmpty) return "";

        if (!_whitespaceAsSuffix && _addDummyPrefix) AppendSpace(output);

        bool previousWasSpace = _removeExtraWhitespaces;
        while (!input.IsEmpty)
        {
            int consumed = NormalizePrefix(input, out var piece);
            if (previousWasSpace)
            {
                while (!piece.IsEmpty && piece[0] == (byte)' ') piece = piece[1..];
            }
            if (!piece.IsEmpty)
            {
                foreach (byte b in piece)
                {
                    if (b == (byte)' ') AppendSpace(output);
                    else output.Add(b);
                }
                previousWasSpace = piece[^1] == (byte)' ';
            }
            input = input[consumed..];
            if (!_removeExtraWhitespaces) previousWasSpace = false;
        }

        if (_removeExtraWhitespaces)
        {
            var space = _escapeWhitespaces ? SpaceSymbol : [(byte)' '];
            while (EndsWith(output, space)) output.RemoveRange(output.Count - space.Length, space.Length);
        }
        if (_whitespaceAsSuffix && _addDummyPrefix) AppendSpace(output);

        return Encoding.UTF8.GetString(output.ToArray());
    }

    /// <summary>sentencepiece's NormalizePrefix: the normalized form of the input's first unit and its length.</summary>
    private int NormalizePrefix(ReadOnlySpan<byte> input, out ReadOnlySpan<byte> normalized)
    {
        foreach (var symbol in _userDefined)
        {
            if (input.StartsWith(symbol))
            {
                normalized = input[..symbol.Length];
                return symbol.Length;
            }
        }
        if (_charsMap != null)
        {
            int ruleLength = _charsMap.LongestPrefixRule(input, out normalized);
            if (ruleLength > 0) return ruleLength;
        }
        if (System.Text.Rune.DecodeFromUtf8(input, out _, out int length) == System.Buffers.OperationStatus.Done)
        {
            normalized = input[..length];
            return length;
        }
        normalized = ReplacementCharacter;  // a malformed byte becomes U+FFFD and is consumed alone
        return 1;
    }

    private void AppendSpace(List<byte> output)
    {
        if (_escapeWhitespaces) output.AddRange(SpaceSymbol);
        else output.Add((byte)' ');
    }

    private static bool EndsWith(List<byte> output, byte[] suffix)
    {
        if (output.Count < suffix.Length) return false;
        for (int i = 0; i < suffix.Length; i++)
        {
            if (output[output.Count - suffix.Length + i] != suffix[i]) return false;
        }
        return true;
    }
}
