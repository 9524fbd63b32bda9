using System.Globalization;
using System.Text;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// sentencepiece's compiled normalization rules (normalizer_spec.precompiled_charsmap, e.g. T5's nmt_nfkc; also the
/// "Precompiled" normalizer of tokenizer.json): a Darts double-array trie over UTF-8 byte prefixes whose values
/// point into a blob of NUL-terminated replacement strings. Blob layout: uint32 LE trie size in bytes, the trie's
/// uint32 units, then the replacement strings.
/// </summary>
internal sealed class PrecompiledCharsMap
{
    private readonly uint[] _units;
    private readonly byte[] _replacements;

    private PrecompiledCharsMap(uint[] units, byte[] replacements)
    {
        _units = units;
        _replacements = replacements;
    }

    /// <summary>Null for an empty blob (the identity normalizer).</summary>
    public static PrecompiledCharsMap? Parse(ReadOnlySpan<byte> blob)
    {
        if (blob.Length == 0) return null;
        if (blob.Length < 4) throw new InvalidDataException("precompiled_charsmap is shorter than its 4-byte header");
        uint trieBytes = BitConverter.ToUInt32(blob[..4]);
        if (trieBytes % 4 != 0 || trieBytes == 0 || trieBytes > (uint)(blob.Length - 4))
            throw new InvalidDataException($"precompiled_charsmap trie size {trieBytes} does not fit its {blob.Length}-byte blob");
        var units = new uint[trieBytes / 4];
        for (int i = 0; i < units.Length; i++) units[i] = BitConverter.ToUInt32(blob.Slice(4 + 4 * i, 4));
        return new PrecompiledCharsMap(units, blob[(4 + (int)trieBytes)..].ToArray());
    }

    /// <summary>
    /// The longest rule whose key is a prefix of <paramref name="utf8"/> (sentencepiece's NormalizePrefix).
    /// Returns the key length in bytes, 0 when no rule matches.
    /// </summary>
    public int LongestPrefixRule(ReadOnlySpan<byte> utf8, out ReadOnlySpan<byte> replacement)
    {
        int length = Search(utf8, wholeKeyOnly: false, out int value);
        replacement = length > 0 ? ReplacementAt(value) : default;
        return length;
    }

    /// <summary>
    /// Hugging Face tokenizers' Precompiled normalizer: each grapheme shorter than 6 bytes is first looked up as a
    /// whole; otherwise (or when absent) each of its characters is replaced by its rule or kept.
    /// </summary>
    public string NormalizeByGrapheme(string text)
    {
        var output = new StringBuilder(text.Length);
        var graphemes = StringInfo.GetTextElementEnumerator(text);
        while (graphemes.MoveNext())
        {
            string grapheme = graphemes.GetTextElement();
            var bytes = Encoding.UTF8.GetBytes(grapheme);
            if (bytes.Length < 6 && Search(bytes, wholeKeyOnly: true, out int whole) > 0)
            {
                output.Append(Encoding.UTF8.GetString(ReplacementAt(whole)));
                continue;
            }
            foreach (var rune in grapheme.EnumerateRunes())
            {
                var part = Encoding.UTF8.GetBytes(rune.ToString());
                if (Search(part, wholeKeyOnly: true, out int value) > 0) output.Append(Encoding.UTF8.GetString(ReplacementAt(value)));
                else output.Append(rune.ToString());
            }
        }
        return output.ToString();
    }

    /// <summary>
    /// Darts' commonPrefixSearch, keeping the longest key that is a prefix of <paramref name="key"/> (or only a key
    /// equal to all of it). Returns that key's length, 0 when none; <paramref name="value"/> is its string offset.
    /// </summary>
    private int Search(ReadOnlySpan<byte> key, bool wholeKeyOnly, out int value)
    {
        value = 0;
        int matched = 0;
        uint nodePos = Offset(_units[0]);
        for (int i = 0; i < key.Length; i++)
        {
            nodePos ^= key[i];
            if (nodePos >= _units.Length) break;
            uint unit = _units[nodePos];
            if (Label(unit) != key[i]) break;
            nodePos ^= Offset(unit);
            if (nodePos >= _units.Length) break;
            if (HasLeaf(unit) && (!wholeKeyOnly || i + 1 == key.Length))
            {
                matched = i + 1;
                value = (int)(_units[nodePos] & 0x7FFFFFFFu);
            }
        }
        return matched;
    }

    private ReadOnlySpan<byte> ReplacementAt(int offset)
    {
        if (offset < 0 || offset >= _replacements.Length)
            throw new InvalidDataException($"precompiled_charsmap points at byte {offset} outside its {_replacements.Length}-byte string table");
        var rest = _replacements.AsSpan(offset);
        int end = rest.IndexOf((byte)0);
        return end < 0 ? rest : rest[..end];
    }

    private static bool HasLeaf(uint unit) => ((unit >> 8) & 1) == 1;
    private static uint Label(uint unit) => unit & ((1u << 31) | 0xFF);
    private static uint Offset(uint unit) => (unit >> 10) << (int)((unit & (1u << 9)) >> 6);
}
