using System.Text.Json.Nodes;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Tokenization;

/// <summary>
/// tokenizer.json in the T5/mT5 fast format (Unigram) and the LLaMA fast format (BPE with byte_fallback and
/// Prepend/Replace normalizers): rebuilt from the real sentencepiece files, and small hand-written files.
/// </summary>
public class SentencePieceTokenizerJsonTests
{
    [Fact]
    public void T5_unigram_tokenizer_json_gives_the_slow_tokenizer_ids()
    {
        var dir = SentencePieceToTokenizerJson.T5(Path.Combine(TokenizerFixtures.Dir("t5"), "spiece.model"));
        try
        {
            var tokenizer = HfTokenizer.FromFolder(dir);
            Assert.Equal("sentencepiece-unigram", tokenizer.Kind);
            Assert.Equal(32100, tokenizer.VocabSize);
            Assert.Equal(((int?)null, 1, 2, 0), (tokenizer.BosTokenId, tokenizer.EosTokenId, tokenizer.UnkTokenId, tokenizer.PadTokenId));

            // The fast format differs from the slow one by design on extra whitespace (it keeps a trailing "▁") and
            // around special tokens (no stripping; eos always appended), so compare on the other strings.
            var comparable = TokenizerFixtures.Expected("t5").Where(e => IsPlainText(e.Text)).ToList();
            Assert.True(comparable.Count >= 25, $"only {comparable.Count} comparable strings");
            var problems = new List<string>();
            foreach (var e in comparable)
            {
                if (!tokenizer.Encode(e.Text).SequenceEqual(e.Ids))
                    problems.Add($"ids of \"{e.Text}\": {string.Join(",", tokenizer.Encode(e.Text))}, expected {string.Join(",", e.Ids)}");
                // Skipping <unk> leaves spaces that slow T5 strips and the fast Metaspace decoder keeps.
                if (!e.Ids.Contains(2) && tokenizer.Decode(e.Ids) != e.Decoded)
                    problems.Add($"decode of \"{e.Text}\": \"{tokenizer.Decode(e.Ids)}\", expected \"{e.Decoded}\"");
            }
            Assert.True(problems.Count == 0, string.Join("\n", problems));
            Assert.Equal([1, 1], tokenizer.Encode("</s>"));  // TemplateProcessing appends eos unconditionally
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Llama_bpe_tokenizer_json_gives_the_slow_tokenizer_ids()
    {
        var dir = SentencePieceToTokenizerJson.Llama(Path.Combine(TokenizerFixtures.Dir("llama"), "tokenizer.model"));
        try
        {
            var tokenizer = HfTokenizer.FromFolder(dir);
            Assert.Equal("sentencepiece-bpe", tokenizer.Kind);
            Assert.Equal((1, 2, 0), (tokenizer.BosTokenId, tokenizer.EosTokenId, tokenizer.UnkTokenId));
            var problems = new List<string>();
            foreach (var e in TokenizerFixtures.Expected("llama"))
            {
                if (!tokenizer.Encode(e.Text).SequenceEqual(e.Ids))
                    problems.Add($"ids of \"{e.Text}\": {string.Join(",", tokenizer.Encode(e.Text))}, expected {string.Join(",", e.Ids)}");
                if (!tokenizer.Encode(e.Text, addSpecialTokens: false).SequenceEqual(e.IdsNoSpecial))
                    problems.Add($"ids without special tokens of \"{e.Text}\" differ");
                // The fast decoder strips one leading space (Strip decoder), the slow one up to two.
                if (!char.IsWhiteSpace(e.Text.FirstOrDefault('x')) && tokenizer.Decode(e.Ids) != e.Decoded)
                    problems.Add($"decode of \"{e.Text}\": \"{tokenizer.Decode(e.Ids)}\", expected \"{e.Decoded}\"");
            }
            Assert.True(problems.Count == 0, string.Join("\n", problems));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Hand_written_bpe_json_uses_byte_fallback_and_its_decoders()
    {
        var tokenizer = Load(HandWrittenTokenizerJson.LlamaStyleBpe(byteFallback: true));
        Assert.Equal([1, 268], tokenizer.Encode("hello"));
        Assert.Equal([1, 268, 259, 269, 263, 270, 262, 271], tokenizer.Encode("hello world"));
        Assert.Equal([1, 264, 3 + 0xC3, 3 + 0xA9], tokenizer.Encode("hé"));
        Assert.Equal([1, 1, 268], tokenizer.Encode("<s>hello"));
        Assert.Equal("hé", tokenizer.Decode(tokenizer.Encode("hé")));
        Assert.Equal("hello world", tokenizer.Decode(tokenizer.Encode("hello world")));
        Assert.Equal("h\uFFFD", tokenizer.Decode([259, 260, 3 + 0xC3]));  // a lone UTF-8 lead byte
    }

    [Fact]
    public void Hand_written_bpe_json_fuses_unknown_characters_without_byte_fallback()
    {
        var tokenizer = Load(HandWrittenTokenizerJson.LlamaStyleBpe(byteFallback: false));
        Assert.Equal([264, 0, 261], tokenizer.Encode("héée", addSpecialTokens: false));
    }

    [Fact]
    public void Hand_written_unigram_json_finds_the_best_segmentation()
    {
        var vocab = new JsonArray(Piece("<unk>", 0), Piece("▁", -2), Piece("▁a", -1), Piece("a", -3), Piece("b", -3), Piece("▁ab", -1.5), Piece("c", -10));
        var json = new JsonObject
        {
            ["added_tokens"] = new JsonArray(HandWrittenTokenizerJson.Added(0, "<unk>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["add_prefix_space"] = true },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["add_prefix_space"] = true },
            ["model"] = new JsonObject { ["type"] = "Unigram", ["unk_id"] = 0, ["vocab"] = vocab },
        };
        var tokenizer = Load(json);
        Assert.Equal("sentencepiece-unigram", tokenizer.Kind);
        Assert.Equal([5], tokenizer.Encode("ab"));
        Assert.Equal([5, 2], tokenizer.Encode("ab a"));
        Assert.Equal([1, 0], tokenizer.Encode("xy"));  // one unk for the run, as sentencepiece reports it
        Assert.Equal("ab a", tokenizer.Decode([5, 2]));
        Assert.Equal(0, tokenizer.UnkTokenId);
    }

    private static JsonArray Piece(string piece, double score) => new(piece, score);

    private static HfTokenizer Load(JsonObject tokenizerJson)
    {
        var dir = TokenizerFixtures.TempDir();
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizerJson.ToJsonString());
            return HfTokenizer.FromFolder(dir);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>No special-token text and no whitespace beyond single inner spaces.</summary>
    private static bool IsPlainText(string text) =>
        text.Length > 0 && text == text.Trim() && !text.Contains("  ") && !text.Any(c => c is '\t' or '\n' or '\r') &&
        !text.Contains('<');
}
