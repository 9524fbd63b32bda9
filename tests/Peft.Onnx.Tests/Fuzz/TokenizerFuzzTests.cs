using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Tests.Tokenization;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>
/// Tokenizer folders with one file mutated, loaded with HfTokenizer.FromFolder and then used (Encode/Decode of a few
/// hard strings). To keep 10,000 loads per format fast, the vocabularies are the small real ones of the repository;
/// the sentencepiece models are the real T5 and LLaMA models cut to their first pieces (the proto reader, the trainer
/// and normalizer specs and the charsmap stay real).
/// </summary>
public class TokenizerFuzzTests(ITestOutputHelper output)
{
    private static readonly string[] Texts =
    [
        "Hello world", "  leading and  double  spaces ", "", "<s></s><unk><pad> <extra_id_0>", "日本語 émoji 🤗 Ω≈ç",
        "\u0000\uFFFD\t\r\n", "a\u0301\u200d", new string('x', 300), "Operating profit rose to EUR 13.1 mn",
    ];

    private static readonly string[] ConfigFiles = ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"];

    /// <summary>Loads the folder and exercises the tokenizer as the trainer and runtime do.</summary>
    private static void LoadAndUse(string dir)
    {
        var tokenizer = HfTokenizer.FromFolder(dir);
        _ = (tokenizer.Kind, tokenizer.BosTokenId, tokenizer.EosTokenId, tokenizer.PadTokenId, tokenizer.UnkTokenId);
        foreach (var text in Texts)
        {
            var ids = tokenizer.Encode(text);
            _ = tokenizer.Encode(text, addSpecialTokens: false);
            _ = tokenizer.Decode(ids);
            _ = tokenizer.Decode(ids, skipSpecialTokens: false);
        }
        int n = Math.Min(tokenizer.VocabSize, 64);
        _ = tokenizer.Decode(Enumerable.Range(0, n), skipSpecialTokens: false);
        if (tokenizer.VocabSize > 0) _ = tokenizer.Decode([tokenizer.VocabSize - 1], skipSpecialTokens: false);
    }

    /// <summary>A folder's files, with one of them (the main file most often) mutated.</summary>
    /// <param name="Weight">How often the folder is picked, relative to the others (large vocabularies load slowly).</param>
    private sealed record Folder(string Name, Dictionary<string, byte[]> Files, string[] Main, int Weight = 1);

    private static Folder Read(string dir, string name, string[] main, int weight = 1) =>
        new(name, Directory.EnumerateFiles(dir).Where(p => main.Contains(Path.GetFileName(p)) || ConfigFiles.Contains(Path.GetFileName(p)))
            .ToDictionary(p => Path.GetFileName(p), File.ReadAllBytes), main, weight);

    private static Folder PickWeighted(IReadOnlyList<Folder> folders, Random r)
    {
        int ticket = r.Next(folders.Sum(f => f.Weight));
        foreach (var f in folders) if ((ticket -= f.Weight) < 0) return f;
        return folders[^1];
    }

    /// <summary>
    /// A byte-level BPE cut to its first <paramref name="keep"/> ids: the vocabulary entries below it and the merges
    /// whose parts and result all stay (BPE ids grow with merge order, so the cut model is consistent).
    /// </summary>
    private static (JsonObject Vocab, List<string> Merges) CutBpe(JsonObject vocab, IEnumerable<string> merges, int keep)
    {
        var kept = new JsonObject();
        foreach (var (token, id) in vocab) if (id!.GetValue<int>() < keep) kept[token] = id.GetValue<int>();
        var keptMerges = merges.Where(m => m.Split(' ') is [var a, var b] && kept.ContainsKey(a) && kept.ContainsKey(b) && kept.ContainsKey(a + b)).ToList();
        return (kept, keptMerges);
    }

    /// <summary>tiny-bloom-fin's tokenizer.json (or its slow files) with the vocabulary cut to 1,000 ids.</summary>
    private static string SmallBloom(bool slow)
    {
        var dir = Seeds.TempDir("bloom-cut");
        var source = TokenizerFixtures.Dir(slow ? "tiny-bloom-fin-slow" : "tiny-bloom-fin");
        foreach (var f in ConfigFiles.Where(f => File.Exists(Path.Combine(source, f)))) File.Copy(Path.Combine(source, f), Path.Combine(dir, f));
        if (slow)
        {
            var lines = File.ReadAllLines(Path.Combine(source, "merges.txt"));
            var (vocab, merges) = CutBpe(JsonNode.Parse(File.ReadAllText(Path.Combine(source, "vocab.json")))!.AsObject(), lines.Skip(1), 1000);
            File.WriteAllText(Path.Combine(dir, "vocab.json"), vocab.ToJsonString());
            File.WriteAllLines(Path.Combine(dir, "merges.txt"), [lines[0], .. merges]);
        }
        else
        {
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "tokenizer.json")))!.AsObject();
            var model = json["model"]!.AsObject();
            var (vocab, merges) = CutBpe(model["vocab"]!.AsObject(), model["merges"]!.AsArray().Select(m => m!.GetValue<string>()), 1000);
            model["vocab"] = vocab;
            model["merges"] = new JsonArray(merges.Select(m => (JsonNode)JsonValue.Create(m)!).ToArray());
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        return dir;
    }

    private void Run(string parser, IReadOnlyList<Folder> folders, Func<string, byte[], Random, byte[]> mutateMain)
    {
        var dir = Seeds.TempDir(parser);
        var written = new Dictionary<string, byte[]>(); // what each file of the folder holds now (unchanged seeds are not rewritten)
        try
        {
            new FuzzRunner(parser, output).Run(
                (r, i) =>
                {
                    var folder = PickWeighted(folders, r);
                    string target = r.Next(5) > 0 ? folder.Main.Pick(r) : ConfigFiles.Pick(r);
                    var wanted = new Dictionary<string, byte[]>();
                    foreach (var (file, bytes) in folder.Files)
                    {
                        wanted[file] = file != target ? bytes
                            : folder.Main.Contains(file) ? (i % 500 == 7 && file.EndsWith(".json") ? Mutator.HugeJson(bytes, r) : mutateMain(file, bytes, r))
                            : Mutator.Json(bytes, r);
                    }
                    if (!folder.Files.ContainsKey(target)) // a config file the folder lacks: write a hostile one
                    {
                        wanted[target] = Mutator.Json(Encoding.UTF8.GetBytes(target == "added_tokens.json"
                            ? "{\"<new>\": 100000, \"<x>\": 5}"
                            : "{\"bos_token\": \"<s>\", \"eos_token\": {\"content\": \"</s>\", \"lstrip\": true}, \"add_bos_token\": true, \"additional_special_tokens\": [\"<a>\"], \"extra_ids\": 3, \"tokenizer_class\": \"T5Tokenizer\"}"), r);
                    }
                    foreach (var file in written.Keys.Except(wanted.Keys).ToList()) { File.Delete(Path.Combine(dir, file)); written.Remove(file); }
                    foreach (var (file, content) in wanted)
                    {
                        if (written.TryGetValue(file, out var now) && ReferenceEquals(now, content)) continue;
                        File.WriteAllBytes(Path.Combine(dir, file), content);
                        written[file] = content;
                    }
                    return wanted.Values.Sum(b => (long)b.Length);
                },
                _ => LoadAndUse(dir),
                size => size);
        }
        finally
        {
            if (FuzzSettings.OnlyCase is not null) // replaying one case: keep its files to look at
            {
                var keep = Path.Combine(Path.GetTempPath(), $"peft-onnx-fuzz-replay-{parser}-{FuzzSettings.OnlyCase}");
                Directory.CreateDirectory(keep);
                foreach (var f in Directory.EnumerateFiles(dir)) File.Copy(f, Path.Combine(keep, Path.GetFileName(f)), overwrite: true);
                output.WriteLine($"case files kept in {keep}");
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Fuzz_tokenizer_json()
    {
        var folders = new List<Folder>();
        var sp = SentencePieceDir();
        try
        {
            var bloom = SmallBloom(slow: false);
            folders.Add(Read(bloom, "bloom", ["tokenizer.json"], weight: 3));
            Directory.Delete(bloom, true);
            // T5's carries its real 240 KB precompiled_charsmap, which makes each load slow: picked less often.
            var t5 = SentencePieceToTokenizerJson.T5(Path.Combine(sp, "t5.model"), extraIds: 5);
            folders.Add(Read(t5, "t5", ["tokenizer.json"], weight: 1));
            Directory.Delete(t5, true);
            var llama = SentencePieceToTokenizerJson.Llama(Path.Combine(sp, "llama.model"));
            folders.Add(Read(llama, "llama", ["tokenizer.json"], weight: 3));
            Directory.Delete(llama, true);
        }
        finally { Directory.Delete(sp, recursive: true); }
        // Most token-level mutations go to the pipeline (normalizer, pre-tokenizer, decoder, added tokens, post-processor)
        // rather than into the thousands of vocabulary entries.
        Run("tokenizer.json", folders, (_, bytes, r) => r.Next(50) == 0 ? HostileRegex(bytes, r)
            : Mutator.Json(bytes, r, json => Mutator.ValuesOf(json, "vocab", "merges")));
    }

    /// <summary>Regex patterns of the file (Split, Replace) replaced by ones that backtrack catastrophically or do not compile.</summary>
    private static byte[] HostileRegex(byte[] json, Random r)
    {
        string[] patterns = ["(x+)+y", "(x|x)*y", "(x*)*\\\\d", "([a-z]+)*$!", "[", "(?<", "\\\\", "(?P<n>x)", "[[^a]]", "\\\\p{Zz}", ""];
        var text = Encoding.UTF8.GetString(json);
        var matches = System.Text.RegularExpressions.Regex.Matches(text, "\"Regex\"\\s*:\\s*\"(?:[^\"\\\\]|\\\\.)*\"");
        if (matches.Count == 0) return json;
        var m = matches[r.Next(matches.Count)];
        return Encoding.UTF8.GetBytes(text[..m.Index] + "\"Regex\": \"" + patterns.Pick(r) + "\"" + text[(m.Index + m.Length)..]);
    }

    [Fact]
    public void Fuzz_vocab_json_and_merges_txt()
    {
        var bloom = SmallBloom(slow: true);
        var folders = new List<Folder>
        {
            Read(TokenizerFixtures.Dir("peft-reference-tiny"), "tiny", ["vocab.json", "merges.txt"], weight: 2),
            Read(bloom, "bloom", ["vocab.json", "merges.txt"], weight: 1),
        };
        Directory.Delete(bloom, true);
        Run("vocab.json+merges.txt", folders, (file, bytes, r) => file == "merges.txt" ? Mutator.Text(bytes, r) : Mutator.Json(bytes, r));
    }

    [Fact]
    public void Fuzz_sentencepiece_model()
    {
        var sp = SentencePieceDir();
        var folders = new List<Folder>();
        try
        {
            var t5 = Seeds.TempDir("spiece-t5");
            File.Copy(Path.Combine(sp, "t5.model"), Path.Combine(t5, "spiece.model"));
            var llama = Seeds.TempDir("spiece-llama");
            File.Copy(Path.Combine(sp, "llama.model"), Path.Combine(llama, "tokenizer.model"));
            folders.Add(Read(t5, "t5", ["spiece.model"], weight: 1));
            folders.Add(Read(llama, "llama", ["tokenizer.model"], weight: 2));
            Directory.Delete(t5, true);
            Directory.Delete(llama, true);
        }
        finally { Directory.Delete(sp, recursive: true); }
        Run("sentencepiece.model", folders, (_, bytes, r) => MutateProto(bytes, r));
    }

    /// <summary>The real T5 and LLaMA sentencepiece models cut to their first pieces, in a temp folder (t5.model, llama.model).</summary>
    internal static string SentencePieceDir()
    {
        var dir = Seeds.TempDir("spiece");
        File.WriteAllBytes(Path.Combine(dir, "t5.model"), CutPieces(File.ReadAllBytes(Path.Combine(TokenizerFixtures.Dir("t5"), "spiece.model")), 400));
        File.WriteAllBytes(Path.Combine(dir, "llama.model"), CutPieces(File.ReadAllBytes(Path.Combine(TokenizerFixtures.Dir("llama"), "tokenizer.model")), 600));
        return dir;
    }

    /// <summary>The top-level fields of a protobuf message: (field, wire, start of the field, end).</summary>
    internal static List<(int Field, int Wire, int Start, int PayloadStart, int End)> TopFields(byte[] data)
    {
        var fields = new List<(int, int, int, int, int)>();
        int pos = 0;
        ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte b = data[pos++];
                v |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return v;
            }
        }
        while (pos < data.Length)
        {
            int start = pos;
            ulong tag = Varint();
            int wire = (int)(tag & 7), field = (int)(tag >> 3);
            int payload;
            switch (wire)
            {
                case 0: payload = pos; Varint(); break;
                case 1: payload = pos; pos += 8; break;
                case 5: payload = pos; pos += 4; break;
                case 2: { int len = (int)Varint(); payload = pos; pos += len; break; }
                default: throw new InvalidDataException("unexpected wire type in a seed model");
            }
            fields.Add((field, wire, start, payload, pos));
        }
        return fields;
    }

    private static byte[] CutPieces(byte[] model, int keep)
    {
        var result = new List<byte>();
        int pieces = 0;
        foreach (var f in TopFields(model))
        {
            if (f.Field == 1 && pieces++ >= keep) continue;
            result.AddRange(model.AsSpan(f.Start, f.End - f.Start).ToArray());
        }
        return result.ToArray();
    }

    private static byte[] Varint(ulong v)
    {
        var bytes = new List<byte>();
        while (v >= 0x80) { bytes.Add((byte)(v | 0x80)); v >>= 7; }
        bytes.Add((byte)v);
        return bytes.ToArray();
    }

    private static byte[] Field(int field, int wire, byte[] payload) =>
        [.. Varint((ulong)(field << 3 | wire)), .. wire == 2 ? Varint((ulong)payload.Length) : [], .. payload];

    /// <summary>
    /// Protobuf-aware mutations of a sentencepiece model: a field's payload mutated (length kept or fixed up), an
    /// appended trainer/normalizer spec overriding a value with an extreme one (ids, model_type, byte_fallback, the
    /// charsmap), odd pieces appended, lengths made to lie; or plain byte-level mutations.
    /// </summary>
    internal static byte[] MutateProto(byte[] model, Random r)
    {
        var fields = TopFields(model);
        ulong[] extremes = [0, 1, 2, 3, 4, 5, 6, 7, 100, 399, 400, 599, 600, 1000, int.MaxValue, uint.MaxValue, ulong.MaxValue, ulong.MaxValue - 1, 1UL << 31, 1UL << 63];
        switch (r.Next(8))
        {
            case 0: // one field's payload mutated, its length prefix rewritten to match
            {
                var f = fields.Where(x => x.Wire == 2).ToList().Pick(r);
                var payload = Mutator.Bytes(model.AsSpan(f.PayloadStart, f.End - f.PayloadStart).ToArray(), r);
                return [.. model.AsSpan(0, f.Start), .. Field(f.Field, 2, payload), .. model.AsSpan(f.End)];
            }
            case 1: // trainer_spec override: model_type, ids, byte_fallback, unk surface
            {
                int[] keys = [3, 24, 35, 40, 41, 42, 43];
                var spec = r.Next(6) == 0 ? Field(44, 2, Encoding.UTF8.GetBytes(r.Next(2) == 0 ? "" : "\u2047\n"))
                                          : Field(keys.Pick(r), 0, Varint(extremes.Pick(r)));
                return [.. model, .. Field(2, 2, spec)];
            }
            case 2: // normalizer_spec override: switches or a hostile precompiled_charsmap
            {
                byte[] spec;
                if (r.Next(2) == 0) spec = Field(new[] { 3, 4, 5 }.Pick(r), 0, Varint(extremes.Pick(r)));
                else
                {
                    var map = new byte[r.Next(64)];
                    r.NextBytes(map);
                    if (map.Length >= 4 && r.Next(2) == 0) BitConverter.GetBytes(r.Next(3) switch { 0 => 4u, 1 => (uint)(map.Length - 4), _ => uint.MaxValue & ~3u }).CopyTo(map, 0);
                    spec = Field(2, 2, map);
                }
                return [.. model, .. Field(3, 2, spec)];
            }
            case 3: // pieces added with odd text, scores and types
            {
                string[] texts = ["", "\u2581", "<unk>", "<s>", "\u0000", "a\nb", "<0xZZ>", "<0x41>", new string('p', 5000)];
                float[] scores = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0, -1e30f, float.Epsilon];
                var piece = new List<byte>();
                piece.AddRange(Field(1, 2, Encoding.UTF8.GetBytes(texts.Pick(r))));
                piece.AddRange(Field(2, 5, BitConverter.GetBytes(scores.Pick(r))));
                piece.AddRange(Field(3, 0, Varint(extremes.Pick(r))));
                var bytes = Field(1, 2, piece.ToArray());
                int at = fields[r.Next(fields.Count)].Start;
                return [.. model.AsSpan(0, at), .. bytes, .. model.AsSpan(at)];
            }
            case 4: // a length prefix that lies
            {
                var f = fields.Where(x => x.Wire == 2).ToList().Pick(r);
                ulong len = (ulong)(f.End - f.PayloadStart);
                ulong[] lies = [len + 1, len - 1, 0, (ulong)model.Length, int.MaxValue, ulong.MaxValue, 1UL << 32];
                return [.. model.AsSpan(0, f.Start), .. Varint((ulong)(f.Field << 3 | 2)), .. Varint(lies.Pick(r)), .. model.AsSpan(f.PayloadStart)];
            }
            case 5: // a field dropped or duplicated (trainer/normalizer missing, pieces reordered)
            {
                var f = fields.Pick(r);
                var bytes = model.AsSpan(f.Start, f.End - f.Start).ToArray();
                return r.Next(2) == 0 ? [.. model.AsSpan(0, f.Start), .. model.AsSpan(f.End)] : [.. bytes, .. model];
            }
            case 6: // truncated at a random point, or at a field boundary
                return r.Next(2) == 0 ? model.AsSpan(0, r.Next(model.Length)).ToArray() : model.AsSpan(0, fields.Pick(r).Start).ToArray();
            default:
                return Mutator.Bytes(model, r);
        }
    }
}
