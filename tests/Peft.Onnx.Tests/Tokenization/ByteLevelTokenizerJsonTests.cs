using Peft.Onnx.Core.Tokenization;
using Xunit;

namespace Peft.Onnx.Tests.Tokenization;

/// <summary>
/// tiny-bloom-fin's byte-level BPE, loaded from tokenizer.json and from its slow vocab.json + merges.txt, and the
/// tiny GPT2Tokenizer of the PEFT reference fixtures.
/// </summary>
public class ByteLevelTokenizerJsonTests
{
    private static readonly HfTokenizer Fast = HfTokenizer.FromFolder(TokenizerFixtures.Dir("tiny-bloom-fin"));
    private static readonly HfTokenizer Slow = HfTokenizer.FromFolder(TokenizerFixtures.Dir("tiny-bloom-fin-slow"));

    [Fact]
    public void Tokenizer_json_and_slow_files_give_the_same_ids_and_round_trip()
    {
        var sentences = TokenizerFixtures.PhrasebankSentences();
        Assert.True(sentences.Count >= 200);
        var problems = new List<string>();
        foreach (var text in sentences)
        {
            var fast = Fast.Encode(text);
            var slow = Slow.Encode(text);
            if (!fast.SequenceEqual(slow)) problems.Add($"ids differ for \"{text}\": {string.Join(",", fast)} vs {string.Join(",", slow)}");
            if (Fast.Decode(fast) != text) problems.Add($"tokenizer.json decode changed \"{text}\" to \"{Fast.Decode(fast)}\"");
            if (Slow.Decode(slow) != text) problems.Add($"slow decode changed \"{text}\" to \"{Slow.Decode(slow)}\"");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Theory]
    [InlineData("negative", new[] { 654, 105, 1609 })]
    [InlineData("neutral", new[] { 654, 356, 1692 })]
    [InlineData("positive", new[] { 114, 396, 273, 554 })]
    public void Label_words_have_the_ids_of_the_model_card(string word, int[] ids)
    {
        Assert.Equal(ids, Fast.Encode(word));
        Assert.Equal(ids, Slow.Encode(word));
    }

    [Fact]
    public void Special_tokens_come_from_the_config_and_none_are_added()
    {
        foreach (var tokenizer in new[] { Fast, Slow })
        {
            Assert.Equal("byte-level-bpe", tokenizer.Kind);
            Assert.Equal(4000, tokenizer.VocabSize);
            Assert.Equal((0, 1, 1, 1), (tokenizer.PadTokenId, tokenizer.EosTokenId, tokenizer.BosTokenId, tokenizer.UnkTokenId));
            Assert.Equal(tokenizer.Encode("Profit rose", addSpecialTokens: false), tokenizer.Encode("Profit rose"));
            Assert.Equal([1], tokenizer.Encode("</s>"));
        }
        var withEos = Fast.Encode("Profit rose").Append(1).Prepend(0).ToList();
        Assert.Equal("Profit rose", Fast.Decode(withEos));
        Assert.Equal("<pad>Profit rose</s>", Fast.Decode(withEos, skipSpecialTokens: false));
    }

    [Fact]
    public void Peft_reference_tokenizer_gives_the_prompt_init_ids()
    {
        var tokenizer = HfTokenizer.FromFolder(TokenizerFixtures.Dir("peft-reference-tiny"));
        const string text = "Classify if the tweet is a complaint or not:";
        // meta.json init_text_token_ids of every prompt_tuning_text case
        Assert.Equal([292, 339, 266, 359, 270, 261, 347, 352, 286, 60], tokenizer.Encode(text));
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        Assert.Equal((0, 1, 1), (tokenizer.PadTokenId, tokenizer.EosTokenId, tokenizer.BosTokenId));
        Assert.Equal(363, tokenizer.VocabSize);
    }
}

/// <summary>BLOOM-style tokenizer.json pre-tokenizer: Split with an Oniguruma regex, then ByteLevel without regex.</summary>
public class SplitPreTokenizerTests
{
    private const string BloomSplit = " ?[^(\\s|[.,!?…。，、।۔،])]+";

    [Fact]
    public void Nested_character_classes_are_flattened_for_dotnet()
    {
        Assert.Equal(" ?[^(\\s|.,!?…。，、।۔،)]+", OnigurumaPattern.FlattenNestedClasses(BloomSplit));
        Assert.Equal("[a\\]b]", OnigurumaPattern.FlattenNestedClasses("[a\\]b]"));
        var words = OnigurumaPattern.Compile(BloomSplit).Matches("Hello, world! EUR131m").Select(m => m.Value);
        Assert.Equal(["Hello", " world", " EUR131m"], words);
    }

    [Fact]
    public void Split_then_byte_level_keeps_the_text_between_matches()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.Dir("tiny-bloom-fin"), "tokenizer.json")))!;
        json["pre_tokenizer"] = System.Text.Json.Nodes.JsonNode.Parse(
            "{\"type\":\"Sequence\",\"pretokenizers\":[" +
            "{\"type\":\"Split\",\"pattern\":{\"Regex\":" + System.Text.Json.JsonSerializer.Serialize(BloomSplit) + "},\"behavior\":\"Isolated\",\"invert\":false}," +
            "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}");
        var dir = TokenizerFixtures.TempDir();
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString());
            var split = HfTokenizer.FromFolder(dir);
            var gpt2Regex = HfTokenizer.FromFolder(TokenizerFixtures.Dir("tiny-bloom-fin"));
            const string text = "Profit rose, sales fell. Shares were down!";  // both patterns cut this text alike
            Assert.Equal(gpt2Regex.Encode(text), split.Encode(text));
            Assert.Equal(text, split.Decode(split.Encode(text)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Ids_beyond_the_tokenizer_decode_to_nothing_like_fast_tokenizers()
    {
        // The reference fixtures' models have 1024 embedding rows for this 363-token tokenizer.
        var tokenizer = HfTokenizer.FromFolder(TokenizerFixtures.Dir("peft-reference-tiny"));
        var ids = tokenizer.Encode("Classify if", addSpecialTokens: false);
        Assert.Equal("Classify if", tokenizer.Decode([.. ids, 716, 1023]));
        var error = Assert.Throws<Peft.Onnx.Core.PeftOnnxException>(() => tokenizer.Decode([.. ids, -1]));
        Assert.Contains("-1", error.Message);
    }
}
