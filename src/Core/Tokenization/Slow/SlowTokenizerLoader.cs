using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Builds a tokenizer from transformers' slow files: a byte-level BPE vocab.json + merges.txt, or a sentencepiece
/// model (spiece.model or tokenizer.model, whose class decides the defaults), plus the optional config files.
/// </summary>
internal static class SlowTokenizerLoader
{
    public static TokenizerParts LoadByteLevelBpe(string dir)
    {
        var vocabPath = Path.Combine(dir, "vocab.json");
        var mergesPath = Path.Combine(dir, "merges.txt");
        var vocab = TokenizerFileError.Guard(vocabPath, () => ReadVocabulary(vocabPath));
        var merges = TokenizerFileError.Guard(mergesPath, () => ReadMerges(mergesPath));
        var config = TokenizerConfigFiles.Read(dir);
        var cls = TokenizerClassDefaults.ForSlowFile("vocab.json");

        int baseSize = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
        var added = SlowAddedVocabulary.Build(config, cls, [], t => vocab.TryGetValue(t, out int id) ? id : null, baseSize);
        var encoder = TokenizerFileError.Guard(mergesPath,
            () => new ByteLevelBpeEncoder(vocab, merges, ByteLevelBpeEncoder.Gpt2WordPattern(), prefixSpacePerChunk: false));

        var tokenById = new Dictionary<int, string>();
        foreach (var (token, id) in vocab) tokenById.TryAdd(id, token);
        foreach (var (id, content) in added.AddedContent) tokenById[id] = content;
        ITokenDecoder decoder = new ByteLevelDecoder(id => tokenById.GetValueOrDefault(id, ""));
        if (added.AddedContent.Count > 0) decoder = new SlowAddedTokenDecoder(decoder, added.AddedContent);

        int? bos = added.IdOf("bos_token");
        bool addBos = config.ConfigBool("add_bos_token") ?? cls.AddBosDefault;
        return new TokenizerParts
        {
            Kind = "byte-level-bpe",
            Encoder = encoder,
            Decoder = decoder,
            AddedTokens = added.Tokens,
            Template = addBos && bos is int b ? new SpecialTokenTemplate([b], []) : SpecialTokenTemplate.None,
            SpecialIds = added.SpecialIds,
            VocabSize = added.Size,
            CleanUpSpaces = config.ConfigBool("clean_up_tokenization_spaces") ?? cls.CleanUpDefault,
            PrefixSpaceBeforeText = config.ConfigBool("add_prefix_space") ?? false,
            BosId = bos, EosId = added.IdOf("eos_token"), PadId = added.IdOf("pad_token"), UnkId = added.IdOf("unk_token"),
        };
    }

    private const int MaxExtraIds = 100_000;

    public static TokenizerParts LoadSentencePiece(string dir, string fileName)
    {
        var path = Path.Combine(dir, fileName);
        var model = TokenizerFileError.Guard(path, () => SentencePieceModel.Parse(File.ReadAllBytes(path)));
        var encoder = TokenizerFileError.Guard(path, () => new SentencePieceEncoder(model));
        var config = TokenizerConfigFiles.Read(dir);
        var cls = TokenizerClassDefaults.ForSentencePiece(config.TokenizerClass, fileName);

        // The sentinels <extra_id_N> sit after the pieces, numbered downwards from the last id.
        int extraIds = cls.TakesExtraIds ? config.ConfigInt("extra_ids") ?? cls.ExtraIdsDefault : 0;
        if (extraIds is < 0 or > MaxExtraIds) // real files use 100; a huge count would allocate a sentinel string per id
            throw TokenizerFileError.Problem(Path.Combine(dir, TokenizerConfigFiles.ConfigFile), $"extra_ids = {extraIds} is out of range (expected 0 to {MaxExtraIds})");
        int pieceCount = model.Pieces.Count;
        int baseSize = pieceCount + extraIds;
        string ExtraId(int id) => $"<extra_id_{baseSize - 1 - id}>";
        int? BaseLookup(string token)
        {
            if (model.Contains(token)) return model.PieceToId(token);
            if (token.StartsWith("<extra_id_", StringComparison.Ordinal) && token.EndsWith('>') &&
                int.TryParse(token.AsSpan(10, token.Length - 11), out int n) && n >= 0 && n < extraIds)
                return baseSize - 1 - n;
            return null;
        }
        var sentinels = Enumerable.Range(0, extraIds).Select(n => $"<extra_id_{n}>").ToList();
        var added = SlowAddedVocabulary.Build(config, cls, sentinels, BaseLookup, baseSize);

        string TokenOf(int id) =>
            id < pieceCount ? model.Pieces[id].Text
            : id < baseSize ? ExtraId(id)
            : added.AddedContent.GetValueOrDefault(id, "");
        ITokenDecoder decoder = new SlowSentencePieceDecoder(new SentencePieceTextDecoder(model), cls.TrimsEveryLeadingSpace, added.SpecialContents, TokenOf);
        if (added.AddedContent.Count > 0) decoder = new SlowAddedTokenDecoder(decoder, added.AddedContent);

        int? bos = added.IdOf("bos_token"), eos = added.IdOf("eos_token");
        bool addBos = config.ConfigBool("add_bos_token") ?? cls.AddBosDefault;
        bool addEos = config.ConfigBool("add_eos_token") ?? cls.AddEosDefault;
        var template = new SpecialTokenTemplate(
            addBos && bos is int b ? [b] : [],
            addEos && eos is int e ? [e] : [],
            SuffixOnlyIfAbsent: cls.EosOnlyIfAbsent);

        return new TokenizerParts
        {
            Kind = model.Algorithm == SentencePieceAlgorithm.Bpe ? "sentencepiece-bpe" : "sentencepiece-unigram",
            Encoder = encoder,
            Decoder = decoder,
            AddedTokens = added.Tokens,
            Template = template,
            SpecialIds = added.SpecialIds,
            VocabSize = added.Size,
            CleanUpSpaces = config.ConfigBool("clean_up_tokenization_spaces") ?? cls.CleanUpDefault,
            BosId = bos, EosId = eos, PadId = added.IdOf("pad_token"), UnkId = added.IdOf("unk_token"),
        };
    }

    private static Dictionary<string, int> ReadVocabulary(string path)
    {
        using var doc = JsonFields.ParseFile(path);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException("expected a JSON object of token: id");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in doc.RootElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw new InvalidDataException($"token '{entry.Name}' has no valid id");
            vocab[entry.Name] = id;
        }
        if (vocab.Count == 0) throw new InvalidDataException("empty vocabulary");
        return vocab;
    }

    /// <summary>merges.txt: an optional "#version" header, then one "left right" pair per line.</summary>
    private static List<string> ReadMerges(string path)
    {
        var merges = new List<string>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)) continue;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2) throw new InvalidDataException($"line {lineNumber} should hold two tokens, has {parts.Length}");
            merges.Add(parts[0] + " " + parts[1]);
        }
        return merges;
    }
}
