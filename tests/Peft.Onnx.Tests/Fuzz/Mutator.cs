using System.Text;
using System.Text.Json;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>
/// Mutations of real files: byte-level (truncation, bit flips, insert/delete, splices, invalid UTF-8) and, for
/// JSON, token-level (a value replaced by a hostile one: NaN, 1e999, huge or negative integers, wrong types,
/// duplicated keys, deep nesting, huge strings).
/// </summary>
public static class Mutator
{
    /// <summary>JSON values that parsers tend to get wrong.</summary>
    public static readonly string[] HostileJsonValues =
    [
        "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "\"NaN\"", "\"Infinity\"", "0", "-1", "-0", "1.5", "1e-999", "0.0", "1e9",
        "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967296", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "18446744073709551615", "18446744073709551616", "1" + new string('0', 400),
        "true", "false", "null", "\"\"", "\"x\"", "\"0\"", "\"-1\"", "\"1e999\"", "[]", "{}", "[1,2]", "[\"a\",\"b\"]", "[null]", "[[]]",
        "{\"a\":1}", "{\"content\":\"x\"}", "[[[[[[[[]]]]]]]]", "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00x\"", "\"a\\nb\"", "\"a\\r\\nb\"",
        "\"../../../etc/passwd\"", "\"/etc/passwd\"", "\"..\"", "\".\"", "\"a\\u0000b\"", "\"\\\\\"", "\"[\"", "\"(\"", "\"*\"", "\"(a+)+$\"",
        "\"F32\"", "\"F16\"", "\"BF16\"", "\"I64\"", "\"BOOL\"", "\"f32\"", "\"LORA\"", "\"IA3\"", "\"PROMPT_TUNING\"", "\"P_TUNING\"",
        "\"PREFIX_TUNING\"", "\"bloom\"", "\"gpt2\"", "\"t5\"", "\"mt5\"", "\"llama\"", "\"opt\"", "\"BPE\"", "\"Unigram\"", "\"WordPiece\"",
        "\"Sequence\"", "\"ByteLevel\"", "\"Metaspace\"", "\"TemplateProcessing\"", "\"Replace\"", "\"Precompiled\"",
        "[0, 18446744073709551615]", "[-1, 4]", "[4, 0]", "[0, 0]", "[0, 1, 2]", "[1.5, 2]", "[\"0\", \"4\"]", "[9223372036854775807, 9223372036854775807]",
        "[4294967296, 4294967296]", "[0]", "[-1]", "[65536, 65536, 65536, 65536]", "[" + string.Join(",", Enumerable.Repeat("1", 70)) + "]",
        "[" + string.Join(",", Enumerable.Range(0, 1000)) + "]",
    ];

    /// <summary>One value of each JSON kind: the usual type confusions, tried as often as all the others together.</summary>
    public static readonly string[] KindChangers = ["null", "\"\"", "\"x\"", "0", "-1", "1e999", "NaN", "true", "[]", "{}", "[1]", "{\"a\":null}"];

    /// <summary>Text fragments for line-based formats (CSV, merges.txt, JSON Lines).</summary>
    private static readonly string[] HostileText =
    [
        "\"", "\"\"", ",", "\r", "\n", "\r\n", "\uFEFF", "\0", "\u2028", "#version: 0.2\n", " ", "\t", "a b c", "\"a\"b", ",,,,", "{}", "[]",
        "{\"a\": 1e999}", "{\"a\": NaN}", "{\"a\": \"\\ud800\"}", "null", "\"x\"\n", "Ġ Ġ", "\u0120", "\uFFFD", "𝄞", "\"\r\n\"",
    ];

    /// <summary>Invalid or awkward UTF-8 byte sequences.</summary>
    private static readonly byte[][] BadUtf8 =
    [
        [0xFF], [0xFE], [0xC0, 0x80], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF0, 0x9F, 0x98], [0x80],
        [0xEF, 0xBB, 0xBF], [0x00], [0xF8, 0x88, 0x80, 0x80, 0x80],
    ];

    private static readonly byte[] InterestingBytes = [0x00, 0xFF, 0x7F, 0x80, 0xC0, 0x01, (byte)'"', (byte)'\\', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'\n', (byte)'0', (byte)'-', (byte)'e'];

    /// <summary>Applies 1-4 byte-level mutations.</summary>
    public static byte[] Bytes(byte[] seed, Random r)
    {
        var data = new List<byte>(seed);
        int n = 1 + r.Next(4);
        for (int k = 0; k < n; k++) ByteOp(data, r);
        return data.ToArray();
    }

    public static void ByteOp(List<byte> data, Random r)
    {
        int Pos(int extra = 0) => data.Count + extra == 0 ? 0 : r.Next(data.Count + extra);
        switch (r.Next(9))
        {
            case 0: // truncate
                if (data.Count > 0) { int at = Pos(); data.RemoveRange(at, data.Count - at); }
                break;
            case 1: // bit flips
                for (int j = 0, m = 1 + r.Next(8); j < m && data.Count > 0; j++) { int at = Pos(); data[at] ^= (byte)(1 << r.Next(8)); }
                break;
            case 2: // random bytes inserted
            {
                var bytes = new byte[1 + r.Next(8)];
                r.NextBytes(bytes);
                data.InsertRange(Pos(1), bytes);
                break;
            }
            case 3: // range deleted
                if (data.Count > 0) { int at = Pos(); data.RemoveRange(at, Math.Min(data.Count - at, 1 + r.Next(Math.Min(64, data.Count)))); }
                break;
            case 4: // interesting byte
                if (data.Count > 0) data[Pos()] = InterestingBytes[r.Next(InterestingBytes.Length)];
                break;
            case 5: // splice: copy a range elsewhere
                if (data.Count > 1)
                {
                    int from = Pos(), len = Math.Min(data.Count - from, 1 + r.Next(256));
                    var chunk = data.GetRange(from, len);
                    data.InsertRange(Pos(1), chunk);
                }
                break;
            case 6: // invalid UTF-8
                data.InsertRange(Pos(1), BadUtf8[r.Next(BadUtf8.Length)]);
                break;
            case 7: // overwrite 4 or 8 bytes with an extreme little-endian integer
                if (data.Count >= 8)
                {
                    ulong[] extremes = [0, ulong.MaxValue, long.MaxValue, 1UL << 63, uint.MaxValue, int.MaxValue, 1UL << 31, 1UL << 32];
                    var v = BitConverter.GetBytes(extremes[r.Next(extremes.Length)]);
                    int at = r.Next(data.Count - 7);
                    for (int j = 0; j < (r.Next(2) == 0 ? 4 : 8); j++) data[at + j] = v[j];
                }
                break;
            default: // a byte swapped with another
                if (data.Count > 1) { int a = Pos(), b = Pos(); (data[a], data[b]) = (data[b], data[a]); }
                break;
        }
    }

    /// <summary>Mostly token-level mutations of JSON (falling back to byte-level), keeping the rest of the file intact.</summary>
    /// <param name="focus">When set, the first token-level mutation avoids the spans it returns (a huge vocabulary) 3 times in 4.</param>
    public static byte[] Json(byte[] seed, Random r, Func<byte[], List<(int Start, int End)>>? focus = null)
    {
        byte[] data = seed;
        int n = 1 + r.Next(2);
        for (int k = 0; k < n; k++)
        {
            if (r.Next(8) == 0) data = Bytes(data, r);
            else data = JsonTokenOp(data, r, k == 0 && focus is not null && r.Next(4) > 0 ? focus(data) : null) ?? Bytes(data, r);
        }
        return data;
    }

    /// <summary>The byte ranges of the values of the given keys (e.g. model.vocab and model.merges of a tokenizer.json).</summary>
    public static List<(int Start, int End)> ValuesOf(byte[] json, params string[] keys)
    {
        var ranges = new List<(int, int)>();
        var spans = Tokens(json);
        if (spans is null) return ranges;
        var containers = spans.Where(s => !s.IsName).ToDictionary(s => s.Start, s => s.ValueEnd);
        foreach (var name in spans.Where(s => s.IsName))
        {
            var text = Encoding.UTF8.GetString(json, name.Start, name.Length);
            if (!keys.Any(k => text == "\"" + k + "\"")) continue;
            int at = name.Start + name.Length;
            while (at < json.Length && json[at] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t' or (byte)':') at++;
            if (containers.TryGetValue(at, out int end)) ranges.Add((at, end));
        }
        return ranges;
    }

    private sealed record Span(int Start, int Length, bool IsName, int ValueEnd);

    /// <summary>Start/length of every value and property name in a JSON document (null if it does not parse).</summary>
    private static List<Span>? Tokens(byte[] json)
    {
        var spans = new List<Span>();
        var open = new Stack<int>();
        var pendingName = new Stack<int>();
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 100_000 });
            int lastName = -1;
            while (reader.Read())
            {
                int start = (int)reader.TokenStartIndex;
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        open.Push(start);
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        int s = open.Pop();
                        spans.Add(new Span(s, (int)reader.BytesConsumed - s, false, (int)reader.BytesConsumed));
                        break;
                    case JsonTokenType.PropertyName:
                        lastName = start;
                        spans.Add(new Span(start, (int)reader.BytesConsumed - start, true, -1));
                        break;
                    case JsonTokenType.Comment:
                        break;
                    default:
                        spans.Add(new Span(start, (int)reader.BytesConsumed - start, false, (int)reader.BytesConsumed));
                        break;
                }
            }
        }
        catch (JsonException) { return null; }
        return spans;
    }

    private static byte[]? JsonTokenOp(byte[] json, Random r, List<(int Start, int End)>? avoid = null)
    {
        var spans = Tokens(json);
        if (spans is null || spans.Count == 0) return null;
        if (avoid is { Count: > 0 })
        {
            var outside = spans.Where(s => !avoid.Any(a => s.Start >= a.Start && s.Start < a.End)).ToList();
            if (outside.Count > 0) spans = outside;
        }
        var values = spans.Where(s => !s.IsName).ToList();
        var names = spans.Where(s => s.IsName).ToList();
        byte[] Replace(Span s, byte[] with) => [.. json.AsSpan(0, s.Start), .. with, .. json.AsSpan(s.Start + s.Length)];
        byte[] Insert(int at, byte[] what) => [.. json.AsSpan(0, at), .. what, .. json.AsSpan(at)];
        byte[] U(string s) => Encoding.UTF8.GetBytes(s);
        switch (r.Next(8))
        {
            case 0: case 1: case 2: // value replaced by a hostile one
                if (values.Count == 0) return null;
                return Replace(values[r.Next(values.Count)], U(r.Next(2) == 0 ? KindChangers[r.Next(KindChangers.Length)] : HostileJsonValues[r.Next(HostileJsonValues.Length)]));
            case 3: // value replaced by another value of the same file (type confusion with realistic content)
            {
                if (values.Count < 2) return null;
                var a = values[r.Next(values.Count)];
                var b = values[r.Next(values.Count)];
                if (b.Length > 1 << 16) return null;
                return Replace(a, json.AsSpan(b.Start, b.Length).ToArray());
            }
            case 4: // duplicated key: "name": value, inserted before the property
            {
                if (names.Count == 0) return null;
                var name = names[r.Next(names.Count)];
                var nameText = json.AsSpan(name.Start, name.Length).ToArray(); // includes the quote and the colon up to the value
                string value = r.Next(2) == 0 ? HostileJsonValues[r.Next(HostileJsonValues.Length)] : "null";
                int nameEnd = Array.IndexOf(nameText, (byte)':');
                var key = nameEnd > 0 ? nameText[..nameEnd] : nameText;
                return Insert(name.Start, [.. key, .. U(": " + value + ", ")]);
            }
            case 5: // key renamed (a required key goes missing, or gets another's name)
            {
                if (names.Count == 0) return null;
                var name = names[r.Next(names.Count)];
                var other = names[r.Next(names.Count)];
                var text = json.AsSpan(other.Start, other.Length).ToArray();
                return r.Next(2) == 0 ? Replace(name, text) : Replace(name, U("\"zz_" + r.Next(1000) + "\""));
            }
            case 6: // a value removed (with its key when in an object): leave a dangling shape or a missing key
            {
                if (values.Count == 0) return null;
                var v = values[r.Next(values.Count)];
                return Replace(v, U(r.Next(3) switch { 0 => "", 1 => "[", _ => "{" }));
            }
            default: // value wrapped in nesting
            {
                if (values.Count == 0) return null;
                var v = values[r.Next(values.Count)];
                int depth = 1 + r.Next(r.Next(2) == 0 ? 4 : 200);
                bool array = r.Next(2) == 0;
                var opening = new StringBuilder();
                var closing = new StringBuilder();
                for (int d = 0; d < depth; d++)
                {
                    opening.Append(array ? "[" : "{\"k\":");
                    closing.Append(array ? "]" : "}");
                }
                return [.. json.AsSpan(0, v.Start), .. U(opening.ToString()), .. json.AsSpan(v.Start, v.Length), .. U(closing.ToString()), .. json.AsSpan(v.Start + v.Length)];
            }
        }
    }

    /// <summary>
    /// A rare, expensive input: a value replaced by nesting 10,000 deep, a 10 MB string, or a 1 MB number.
    /// Falls back to appending at the end when the seed is not JSON.
    /// </summary>
    public static byte[] HugeJson(byte[] seed, Random r)
    {
        string payload = r.Next(6) switch
        {
            0 => new string('[', 10_000) + new string(']', 10_000),
            1 => string.Concat(Enumerable.Repeat("{\"a\":", 10_000)) + "1" + new string('}', 10_000),
            2 => "\"" + new string('x', 10 * 1024 * 1024) + "\"",
            3 => "\"" + string.Concat(Enumerable.Repeat("\\u00e9", 1024 * 1024)) + "\"",
            4 => "1" + new string('0', 1024 * 1024),
            _ => "[" + string.Join(",", Enumerable.Repeat("1e999", 200_000)) + "]",
        };
        var spans = Tokens(seed)?.Where(s => !s.IsName).ToList();
        var bytes = Encoding.UTF8.GetBytes(payload);
        if (spans is null || spans.Count == 0) return [.. seed, .. bytes];
        var v = spans[r.Next(spans.Count)];
        return [.. seed.AsSpan(0, v.Start), .. bytes, .. seed.AsSpan(v.Start + v.Length)];
    }

    /// <summary>Mutations for line-based text: hostile fragments, duplicated or dropped lines, plus byte-level ones.</summary>
    public static byte[] Text(byte[] seed, Random r)
    {
        var text = Encoding.UTF8.GetString(seed);
        int n = 1 + r.Next(3);
        for (int k = 0; k < n; k++)
        {
            switch (r.Next(6))
            {
                case 0: case 1:
                    text = text.Insert(r.Next(text.Length + 1), HostileText[r.Next(HostileText.Length)]);
                    break;
                case 2:
                {
                    var lines = text.Split('\n').ToList();
                    int at = r.Next(lines.Count);
                    if (r.Next(2) == 0) lines.Insert(r.Next(lines.Count + 1), lines[at]);
                    else lines.RemoveAt(at);
                    text = string.Join('\n', lines);
                    break;
                }
                case 3: // a line made very long or very wide
                    text = text.Insert(r.Next(text.Length + 1), r.Next(2) == 0 ? new string('a', 100_000) : string.Concat(Enumerable.Repeat("x,", 5_000)));
                    break;
                default:
                    return Bytes(Encoding.UTF8.GetBytes(text), r);
            }
        }
        return Encoding.UTF8.GetBytes(text);
    }
}
