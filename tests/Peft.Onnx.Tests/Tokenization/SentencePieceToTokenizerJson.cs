using System.Text.Json;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Tests.Tokenization;

/// <summary>
/// Writes the tokenizer.json that transformers 4.33's converters (T5Converter, LlamaConverter) make from a
/// sentencepiece model, so the fast-format code paths run on real vocabularies: T5 as a Unigram model with
/// Precompiled + Replace normalizers and Metaspace; LLaMA as a byte_fallback BPE with Prepend + Replace normalizers
/// and merges recovered from the piece scores (SentencePieceExtractor).
/// </summary>
internal static class SentencePieceToTokenizerJson
{
    public static string T5(string spiecePath, int extraIds = 100)
    {
        var model = SentencePieceModel.Parse(File.ReadAllBytes(spiecePath));
        int count = model.Pieces.Count;
        var dir = TokenizerFixtures.TempDir();
        WriteConfig(dir, "T5TokenizerFast");
        Write(dir, w =>
        {
            w.WriteStartArray("added_tokens");
            AddedToken(w, 0, "<pad>");
            AddedToken(w, 1, "</s>");
            AddedToken(w, 2, "<unk>");
            for (int i = 0; i < extraIds; i++) AddedToken(w, count + extraIds - 1 - i, $"<extra_id_{i}>");
            w.WriteEndArray();

            w.WriteStartObject("normalizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("normalizers");
            w.WriteStartObject();
            w.WriteString("type", "Precompiled");
            w.WriteString("precompiled_charsmap", Convert.ToBase64String(model.CharsMap));
            w.WriteEndObject();
            Replace(w, "Regex", " {2,}", " ");
            w.WriteEndArray();
            w.WriteEndObject();

            Metaspace(w, "pre_tokenizer");
            Template(w, prefix: null, suffix: ("</s>", 1));
            Metaspace(w, "decoder");

            w.WriteStartObject("model");
            w.WriteString("type", "Unigram");
            w.WriteNumber("unk_id", model.UnkId);
            w.WriteStartArray("vocab");
            foreach (var piece in model.Pieces) VocabEntry(w, piece.Text, piece.Score);
            for (int i = extraIds - 1; i >= 0; i--) VocabEntry(w, $"<extra_id_{i}>", 0);
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return dir;
    }

    public static string Llama(string modelPath)
    {
        var model = SentencePieceModel.Parse(File.ReadAllBytes(modelPath));
        var dir = TokenizerFixtures.TempDir();
        WriteConfig(dir, "LlamaTokenizerFast");
        Write(dir, w =>
        {
            w.WriteStartArray("added_tokens");
            AddedToken(w, 0, "<unk>");
            AddedToken(w, 1, "<s>");
            AddedToken(w, 2, "</s>");
            w.WriteEndArray();

            w.WriteStartObject("normalizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("normalizers");
            w.WriteStartObject();
            w.WriteString("type", "Prepend");
            w.WriteString("prepend", "\u2581");
            w.WriteEndObject();
            Replace(w, "String", " ", "\u2581");
            w.WriteEndArray();
            w.WriteEndObject();

            w.WriteNull("pre_tokenizer");
            Template(w, prefix: ("<s>", 1), suffix: null);

            w.WriteStartObject("decoder");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("decoders");
            Replace(w, "String", "\u2581", " ");
            w.WriteStartObject();
            w.WriteString("type", "ByteFallback");
            w.WriteEndObject();
            w.WriteStartObject();
            w.WriteString("type", "Fuse");
            w.WriteEndObject();
            w.WriteStartObject();
            w.WriteString("type", "Strip");
            w.WriteString("content", " ");
            w.WriteNumber("start", 1);
            w.WriteNumber("stop", 0);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();

            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteString("unk_token", "<unk>");
            w.WriteBoolean("fuse_unk", true);
            w.WriteBoolean("byte_fallback", true);
            w.WriteStartObject("vocab");
            for (int id = 0; id < model.Pieces.Count; id++) w.WriteNumber(model.Pieces[id].Text, id);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (left, right) in MergesFromScores(model)) w.WriteStringValue(left + " " + right);
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return dir;
    }

    /// <summary>Every split of a piece into two pieces, ordered by the joined piece's score (highest first);
    /// zero scores are skipped as the Python extractor's truthiness test does.</summary>
    private static IEnumerable<(string, string)> MergesFromScores(SentencePieceModel model)
    {
        var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < model.Pieces.Count; id++) idOf.TryAdd(model.Pieces[id].Text, id);
        var merges = new List<(string Left, string Right, float Score, int LeftId, int RightId)>();
        foreach (var piece in model.Pieces.Where(p => p.Score != 0))
        {
            for (int cut = 1; cut < piece.Text.Length; cut++)
            {
                string left = piece.Text[..cut], right = piece.Text[cut..];
                if (idOf.TryGetValue(left, out int l) && idOf.TryGetValue(right, out int r)) merges.Add((left, right, piece.Score, l, r));
            }
        }
        return merges.OrderByDescending(m => m.Score).ThenBy(m => m.LeftId).ThenBy(m => m.RightId).Select(m => (m.Left, m.Right));
    }

    private static void WriteConfig(string dir, string tokenizerClass) =>
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), $"{{\"tokenizer_class\": \"{tokenizerClass}\"}}");

    private static void Write(string dir, Action<Utf8JsonWriter> body)
    {
        using var stream = File.Create(Path.Combine(dir, "tokenizer.json"));
        using var w = new Utf8JsonWriter(stream);
        w.WriteStartObject();
        w.WriteString("version", "1.0");
        body(w);
        w.WriteEndObject();
    }

    private static void AddedToken(Utf8JsonWriter w, int id, string content)
    {
        w.WriteStartObject();
        w.WriteNumber("id", id);
        w.WriteString("content", content);
        w.WriteBoolean("single_word", false);
        w.WriteBoolean("lstrip", false);
        w.WriteBoolean("rstrip", false);
        w.WriteBoolean("normalized", false);
        w.WriteBoolean("special", true);
        w.WriteEndObject();
    }

    private static void Replace(Utf8JsonWriter w, string patternKind, string pattern, string content)
    {
        w.WriteStartObject();
        w.WriteString("type", "Replace");
        w.WriteStartObject("pattern");
        w.WriteString(patternKind, pattern);
        w.WriteEndObject();
        w.WriteString("content", content);
        w.WriteEndObject();
    }

    private static void Metaspace(Utf8JsonWriter w, string property)
    {
        w.WriteStartObject(property);
        w.WriteString("type", "Metaspace");
        w.WriteString("replacement", "\u2581");
        w.WriteBoolean("add_prefix_space", true);
        w.WriteEndObject();
    }

    private static void Template(Utf8JsonWriter w, (string Token, int Id)? prefix, (string Token, int Id)? suffix)
    {
        void Special(string token)
        {
            w.WriteStartObject();
            w.WriteStartObject("SpecialToken");
            w.WriteString("id", token);
            w.WriteNumber("type_id", 0);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteStartObject("post_processor");
        w.WriteString("type", "TemplateProcessing");
        w.WriteStartArray("single");
        if (prefix is { } p) Special(p.Token);
        w.WriteStartObject();
        w.WriteStartObject("Sequence");
        w.WriteString("id", "A");
        w.WriteNumber("type_id", 0);
        w.WriteEndObject();
        w.WriteEndObject();
        if (suffix is { } s) Special(s.Token);
        w.WriteEndArray();
        w.WriteStartObject("special_tokens");
        foreach (var (token, id) in new[] { prefix, suffix }.OfType<(string, int)>())
        {
            w.WriteStartObject(token);
            w.WriteString("id", token);
            w.WriteStartArray("ids");
            w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteStartArray("tokens");
            w.WriteStringValue(token);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void VocabEntry(Utf8JsonWriter w, string piece, float score)
    {
        w.WriteStartArray();
        w.WriteStringValue(piece);
        w.WriteNumberValue(score);
        w.WriteEndArray();
    }
}
