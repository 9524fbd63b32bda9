using System.Text;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Hugging Face tokenizers' BPE model for vocabularies that are not byte-level (LLaMA-style tokenizer.json):
/// characters missing from the vocabulary become "&lt;0xNN&gt;" byte tokens (byte_fallback) or the unk token
/// (runs fused with fuse_unk), then pairs join in merge-rank order, leftmost first.
/// </summary>
internal sealed class RankedBpe(
    IReadOnlyDictionary<string, int> vocabulary,
    IReadOnlyDictionary<(string, string), int> mergeRanks,
    string? unkToken, bool fuseUnk, bool byteFallback, bool ignoreMerges)
{
    public void EncodeWord(string word, List<int> ids)
    {
        if (word.Length == 0) return;
        if (ignoreMerges && vocabulary.TryGetValue(word, out int whole))
        {
            ids.Add(whole);
            return;
        }

        var symbols = new List<string>();
        var frozen = new List<bool>();
        bool lastWasUnknown = false;
        foreach (var rune in word.EnumerateRunes())
        {
            string c = rune.ToString();
            if (vocabulary.ContainsKey(c))
            {
                symbols.Add(c);
                frozen.Add(false);
                lastWasUnknown = false;
                continue;
            }
            if (byteFallback)
            {
                var byteTokens = Encoding.UTF8.GetBytes(c).Select(b => $"<0x{b:X2}>").ToList();
                if (byteTokens.All(vocabulary.ContainsKey))
                {
                    symbols.AddRange(byteTokens);
                    frozen.AddRange(byteTokens.Select(_ => false));
                    lastWasUnknown = false;
                    continue;
                }
            }
            if (unkToken == null || !vocabulary.ContainsKey(unkToken)) continue;  // tokenizers drops it
            if (!(fuseUnk && lastWasUnknown))
            {
                symbols.Add(unkToken);
                frozen.Add(true);
            }
            lastWasUnknown = true;
        }

        foreach (var symbol in BpeMerger.Merge(symbols, frozen, PairPriority)) ids.Add(vocabulary[symbol]);
    }

    private double? PairPriority(string left, string right) =>
        mergeRanks.TryGetValue((left, right), out int rank) && vocabulary.ContainsKey(left + right) ? -rank : null;
}
