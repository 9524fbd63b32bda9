using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Tokenization;

/// <summary>Bad tokenizer folders and files give a one-line <see cref="PeftOnnxException"/> naming the file.</summary>
public class TokenizerErrorTests
{
    [Fact]
    public void Folder_without_tokenizer_files_is_reported()
    {
        var dir = TokenizerFixtures.TempDir();
        try
        {
            var error = Assert.Throws<PeftOnnxException>(() => HfTokenizer.FromFolder(dir));
            Assert.Contains(dir, error.Message);
            Assert.Contains("no tokenizer found", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Missing_folder_is_reported()
    {
        var error = Assert.Throws<PeftOnnxException>(() => HfTokenizer.FromFolder(Path.Combine(Path.GetTempPath(), "no-such-" + Guid.NewGuid())));
        Assert.Contains("does not exist", error.Message);
    }

    [Fact]
    public void Unsupported_model_type_is_reported()
    {
        var json = HandWrittenTokenizerJson.LlamaStyleBpe(byteFallback: true);
        json["model"] = new JsonObject { ["type"] = "WordPiece", ["vocab"] = new JsonObject { ["[UNK]"] = 0 } };
        var error = ErrorFromTokenizerJson(json.ToJsonString());
        Assert.Contains("model.type 'WordPiece' is not supported", error.Message);
    }

    [Fact]
    public void Unsupported_normalizer_is_reported()
    {
        var json = HandWrittenTokenizerJson.LlamaStyleBpe(byteFallback: true);
        json["normalizer"] = new JsonObject { ["type"] = "BertNormalizer" };
        Assert.Contains("normalizer type 'BertNormalizer' is not supported", ErrorFromTokenizerJson(json.ToJsonString()).Message);
    }

    [Theory]
    [InlineData("{ this is not json")]
    [InlineData("[1, 2, 3]")]
    [InlineData("")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2]}}")]
    public void Malformed_tokenizer_json_is_reported(string content) => ErrorFromTokenizerJson(content);

    [Fact]
    public void Truncated_tokenizer_json_is_reported()
    {
        var text = File.ReadAllText(Path.Combine(TokenizerFixtures.Dir("tiny-bloom-fin"), "tokenizer.json"));
        foreach (double fraction in new[] { 0.1, 0.5, 0.99 }) ErrorFromTokenizerJson(text[..(int)(text.Length * fraction)]);
    }

    [Theory]
    [InlineData("t5", "spiece.model")]
    [InlineData("llama", "tokenizer.model")]
    public void Truncated_sentencepiece_model_is_reported(string fixture, string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(TokenizerFixtures.Dir(fixture), file));
        foreach (int length in new[] { 0, 1, 7, 1000, bytes.Length / 2, bytes.Length - 300, bytes.Length - 1 })
        {
            var dir = TokenizerFixtures.TempDir();
            try
            {
                File.WriteAllBytes(Path.Combine(dir, file), bytes[..length]);
                var error = Assert.Throws<PeftOnnxException>(() => HfTokenizer.FromFolder(dir));
                Assert.Contains(file, error.Message);
                Assert.DoesNotContain('\n', error.Message);
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void Random_bytes_as_sentencepiece_model_are_reported()
    {
        var dir = TokenizerFixtures.TempDir();
        try
        {
            var bytes = new byte[4096];
            new Random(7).NextBytes(bytes);
            File.WriteAllBytes(Path.Combine(dir, "spiece.model"), bytes);
            Assert.Contains("spiece.model", Assert.Throws<PeftOnnxException>(() => HfTokenizer.FromFolder(dir)).Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("vocab.json", "{\"a\": \"not an id\"}")]
    [InlineData("vocab.json", "{\"a\": 1")]
    [InlineData("merges.txt", "#version: 0.2\nĠ t x\n")]
    [InlineData("tokenizer_config.json", "{\"bos_token\": 5}")]
    [InlineData("special_tokens_map.json", "{ broken")]
    public void Bad_slow_files_are_reported(string file, string content)
    {
        var dir = TokenizerFixtures.CopyOf("tiny-bloom-fin-slow", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json");
        try
        {
            File.WriteAllText(Path.Combine(dir, file), content);
            var error = Assert.Throws<PeftOnnxException>(() => HfTokenizer.FromFolder(dir));
            Assert.Contains(file, error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Negative_ids_are_reported_by_decode()
    {
        var tokenizer = HfTokenizer.FromFolder(TokenizerFixtures.Dir("tiny-bloom-fin"));
        Assert.Throws<PeftOnnxException>(() => tokenizer.Decode([5, -1]));
    }

    private static PeftOnnxException ErrorFromTokenizerJson(string content)
    {
        var dir = TokenizerFixtures.TempDir();
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), content);
            var error = Assert.Throws<PeftOnnxException>(() => HfTokenizer.FromFolder(dir));
            Assert.Contains("tokenizer.json", error.Message);
            Assert.DoesNotContain('\n', error.Message);
            return error;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
