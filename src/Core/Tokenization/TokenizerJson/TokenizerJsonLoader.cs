using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Builds a tokenizer from tokenizer.json (transformers' fast format), which Microsoft.ML.Tokenizers 2.0.1 cannot
/// read itself: byte-level BPE goes to ML's BpeTokenizer, Unigram to ML's sentencepiece Viterbi through a rebuilt
/// model, sentencepiece-style BPE (byte_fallback, Metaspace or Prepend/Replace normalizers) to <see cref="RankedBpe"/>.
/// Special-token ids come from tokenizer_config.json / special_tokens_map.json when present.
/// </summary>
internal static class TokenizerJsonLoader
{
    /// <summary>The model part of a tokenizer.json: its encoder and vocabulary.</summary>
    private sealed record JsonModel(string Kind, IChunkEncoder Encoder, IReadOnlyDictionary<string, int> Vocabulary, string? UnkToken);

    public static TokenizerParts Load(string dir)
    {
        var path = Path.Combine(dir, "tokenizer.json");
        var config = TokenizerConfigFiles.Read(dir);
        return TokenizerFileError.Guard(path, () =>
        {
            using var doc = JsonFields.ParseFile(path);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException("expected a JSON object");
            return Build(path, doc.RootElement, config);
        });
    }

    private static TokenizerParts Build(string path, JsonElement root, TokenizerConfigFiles config)
    {
        var addedTokens = ReadAddedTokens(root);
        var model = BuildModel(path, root, addedTokens);
        var cls = TokenizerClassDefaults.ForName(config.TokenizerClass);
        var vocabulary = JsonAddedVocabulary.Build(model.Vocabulary, addedTokens, config, cls);

        var template = PostProcessorTemplate.FromJson(JsonFields.Get(root, "post_processor"));
        if (cls is { RebuildsPostProcessor: true })
        {
            bool addBos = config.ConfigBool("add_bos_token") ?? cls.AddBosDefault;
            bool addEos = config.ConfigBool("add_eos_token") ?? cls.AddEosDefault;
            template = new SpecialTokenTemplate(
                addBos && vocabulary.IdOf("bos_token") is int b ? [b] : [],
                addEos && vocabulary.IdOf("eos_token") is int e ? [e] : []);
        }

        // Without config files, the template and the model's unk token still tell the special ids.
        int? unkFromModel = model.UnkToken != null && vocabulary.TryGetId(model.UnkToken, out int unk) ? unk : null;
        return new TokenizerParts
        {
            Kind = model.Kind,
            Encoder = model.Encoder,
            Decoder = TokenDecoderChain.FromJson(JsonFields.Get(root, "decoder"), id => vocabulary.TokenById.GetValueOrDefault(id, "")),
            AddedTokens = vocabulary.Tokens,
            Template = template,
            SpecialIds = vocabulary.SpecialIds,
            VocabSize = vocabulary.Size,
            CleanUpSpaces = config.ConfigBool("clean_up_tokenization_spaces") ?? cls?.CleanUpDefault ?? true,
            BosId = vocabulary.IdOf("bos_token") ?? (template.Prefix.Count == 1 ? template.Prefix[0] : null),
            EosId = vocabulary.IdOf("eos_token") ?? (template.Suffix.Count == 1 ? template.Suffix[0] : null),
            PadId = vocabulary.IdOf("pad_token"),
            UnkId = vocabulary.IdOf("unk_token") ?? unkFromModel,
        };
    }

    private static JsonModel BuildModel(string path, JsonElement root, IReadOnlyList<AddedToken> addedTokens)
    {
        var model = JsonFields.Required(root, "model", JsonValueKind.Object);
        string type = JsonFields.String(model, "type")
                      ?? (JsonFields.Get(model, "merges") != null ? "BPE"
                          : JsonFields.Get(model, "vocab")?.ValueKind == JsonValueKind.Array ? "Unigram" : "(none)");
        var normalizer = NormalizerChain.FromJson(JsonFields.Get(root, "normalizer"));
        var preTokenizer = PreTokenizerSpec.FromJson(JsonFields.Get(root, "pre_tokenizer"));
        switch (type)
        {
            case "BPE":
            {
                var vocab = ReadBpeVocabulary(model);
                var merges = ReadMerges(model);
                string? unkToken = JsonFields.String(model, "unk_token");
                if (!string.IsNullOrEmpty(JsonFields.String(model, "continuing_subword_prefix")) ||
                    !string.IsNullOrEmpty(JsonFields.String(model, "end_of_word_suffix")))
                    throw new NotSupportedException("BPE continuing_subword_prefix / end_of_word_suffix are not supported");
                if (preTokenizer.ByteLevel)
                {
                    var byteLevel = new ByteLevelBpeEncoder(vocab, merges.Select(JoinMerge).ToList(), preTokenizer.WordPattern, preTokenizer.PrefixSpace);
                    return new JsonModel("byte-level-bpe", new JsonPipelineEncoder(normalizer, null, byteLevel.Encode), vocab, unkToken);
                }
                var ranks = new Dictionary<(string, string), int>();
                for (int rank = 0; rank < merges.Count; rank++) ranks.TryAdd(merges[rank], rank);
                var bpe = new RankedBpe(vocab, ranks, unkToken, JsonFields.Bool(model, "fuse_unk") ?? false,
                    JsonFields.Bool(model, "byte_fallback") ?? false, JsonFields.Bool(model, "ignore_merges") ?? false);
                var encoder = new JsonPipelineEncoder(normalizer, preTokenizer.Metaspace, (word, _, ids) => bpe.EncodeWord(word, ids));
                return new JsonModel("sentencepiece-bpe", encoder, vocab, unkToken);
            }
            case "Unigram":
            {
                if (preTokenizer.ByteLevel) throw new NotSupportedException("Unigram with a ByteLevel pre_tokenizer is not supported");
                var controls = addedTokens.Where(t => t.Special).Select(t => t.Content).ToHashSet(StringComparer.Ordinal);
                var unigram = new SentencePieceEncoder(UnigramModelProto.Build(model, controls));
                var pieces = unigram.Model.Pieces;
                var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
                for (int id = 0; id < pieces.Count; id++) vocab.TryAdd(pieces[id].Text, id);
                var encoder = new JsonPipelineEncoder(normalizer, preTokenizer.Metaspace, (word, _, ids) => unigram.EncodeNormalized(word, ids));
                return new JsonModel("sentencepiece-unigram", encoder, vocab, pieces[unigram.Model.UnkId].Text);
            }
            default:
                throw TokenizerFileError.Problem(path, $"model.type '{type}' is not supported (expected BPE or Unigram)");
        }
    }

    private static List<AddedToken> ReadAddedTokens(JsonElement root)
    {
        var list = new List<AddedToken>();
        if (JsonFields.Get(root, "added_tokens") is not { } array) return list;
        if (array.ValueKind != JsonValueKind.Array) throw new InvalidDataException("'added_tokens' should be an array");
        foreach (var t in array.EnumerateArray())
        {
            list.Add(new AddedToken(
                JsonFields.String(t, "content") ?? throw new InvalidDataException("added token without 'content'"),
                JsonFields.Int(t, "id") ?? throw new InvalidDataException("added token without 'id'"),
                JsonFields.Bool(t, "special") ?? false,
                JsonFields.Bool(t, "lstrip") ?? false,
                JsonFields.Bool(t, "rstrip") ?? false,
                JsonFields.Bool(t, "single_word") ?? false));
        }
        return list;
    }

    private static Dictionary<string, int> ReadBpeVocabulary(JsonElement model)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in JsonFields.Required(model, "vocab", JsonValueKind.Object).EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw new InvalidDataException($"model.vocab token '{entry.Name}' has no valid id");
            vocab[entry.Name] = id;
        }
        return vocab;
    }

    /// <summary>model.merges: "left right" strings (older files) or [left, right] pairs (newer files).</summary>
    private static List<(string, string)> ReadMerges(JsonElement model)
    {
        var merges = new List<(string, string)>();
        if (JsonFields.Get(model, "merges") is not { } array) return merges;
        if (array.ValueKind != JsonValueKind.Array) throw new InvalidDataException("model.merges should be an array");
        foreach (var merge in array.EnumerateArray())
        {
            if (merge.ValueKind == JsonValueKind.String)
            {
                var parts = merge.GetString()!.Split(' ');
                if (parts.Length != 2) throw new InvalidDataException($"merge '{merge.GetString()}' should be two tokens separated by one space");
                merges.Add((parts[0], parts[1]));
            }
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2 &&
                     merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                merges.Add((merge[0].GetString()!, merge[1].GetString()!));
            else throw new InvalidDataException("model.merges entries should be \"left right\" or [left, right]");
        }
        return merges;
    }

    /// <summary>ML's BpeOptions.Merges takes "left right" lines, which cannot hold a token with a space.</summary>
    private static string JoinMerge((string Left, string Right) merge) =>
        merge.Left.Contains(' ') || merge.Right.Contains(' ')
            ? throw new NotSupportedException("byte-level merges containing spaces are not supported")
            : merge.Left + " " + merge.Right;
}
