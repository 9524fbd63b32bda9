using Peft.Onnx.Core.Tokenization;
using Xunit;

namespace Peft.Onnx.Tests.Tokenization;

/// <summary>
/// The real GPT-2, LLaMA and T5 tokenizer files against what transformers 4.33's slow tokenizers give for 40 hard
/// strings: ids with and without special tokens and decode(ids, skip_special_tokens=True). Every mismatch is listed.
/// </summary>
public class ReferenceStringTests
{
    [Fact]
    public void Gpt2_vocab_and_merges_match_transformers_on_all_strings()
    {
        var tokenizer = AssertAllMatch("gpt2", "byte-level-bpe");
        Assert.Equal(50257, tokenizer.VocabSize);
        Assert.Equal((50256, 50256, 50256, (int?)null),
            (tokenizer.BosTokenId, tokenizer.EosTokenId, tokenizer.UnkTokenId, tokenizer.PadTokenId));
        Assert.Equal([15496, 995], tokenizer.Encode("Hello world"));
    }

    [Fact]
    public void Llama_tokenizer_model_matches_transformers_on_all_strings()
    {
        var tokenizer = AssertAllMatch("llama", "sentencepiece-bpe");
        Assert.Equal(32000, tokenizer.VocabSize);
        Assert.Equal((1, 2, 0, (int?)null), (tokenizer.BosTokenId, tokenizer.EosTokenId, tokenizer.UnkTokenId, tokenizer.PadTokenId));
    }

    [Fact]
    public void T5_spiece_model_matches_transformers_on_all_strings()
    {
        var tokenizer = AssertAllMatch("t5", "sentencepiece-unigram");
        Assert.Equal(32100, tokenizer.VocabSize);
        Assert.Equal(((int?)null, 1, 2, 0), (tokenizer.BosTokenId, tokenizer.EosTokenId, tokenizer.UnkTokenId, tokenizer.PadTokenId));
        Assert.Equal([13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1],
            tokenizer.Encode("translate English to German: The house is wonderful."));
    }

    private static HfTokenizer AssertAllMatch(string name, string kind)
    {
        var tokenizer = HfTokenizer.FromFolder(TokenizerFixtures.Dir(name));
        Assert.Equal(kind, tokenizer.Kind);
        var expected = TokenizerFixtures.Expected(name);
        Assert.Equal(40, expected.Count);

        var mismatches = new List<string>();
        void Check<T>(string what, ExpectedEncoding e, T want, T got, Func<T, string> show)
        {
            if (!EqualityComparer<string>.Default.Equals(show(want), show(got)))
                mismatches.Add($"{what} of {Show(e.Text)}: expected {show(want)}, got {show(got)}");
        }
        foreach (var e in expected)
        {
            Check("ids", e, e.Ids, tokenizer.Encode(e.Text).ToArray(), ids => string.Join(",", ids));
            Check("ids_no_special", e, e.IdsNoSpecial, tokenizer.Encode(e.Text, addSpecialTokens: false).ToArray(), ids => string.Join(",", ids));
            Check("decoded", e, e.Decoded, tokenizer.Decode(e.Ids), Show);
        }
        Assert.True(mismatches.Count == 0,
            $"{name}: {mismatches.Count} of {3 * expected.Count} checks differ from transformers:\n" + string.Join("\n", mismatches));
        return tokenizer;
    }

    private static string Show(string text) => System.Text.Json.JsonSerializer.Serialize(text);
}
