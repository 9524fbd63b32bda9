using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// tokenizer.json's "decoder": steps over the list of token strings, as Hugging Face tokenizers' decode_chain.
/// Supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence. Without a decoder the tokens are
/// joined with spaces, as tokenizers does.
/// </summary>
internal sealed class TokenDecoderChain : ITokenDecoder
{
    private readonly Func<int, string> _tokenOf;
    private readonly IReadOnlyList<Func<List<string>, List<string>>>? _steps;

    private TokenDecoderChain(Func<int, string> tokenOf, IReadOnlyList<Func<List<string>, List<string>>>? steps)
    {
        _tokenOf = tokenOf;
        _steps = steps;
    }

    public static TokenDecoderChain FromJson(JsonElement? spec, Func<int, string> tokenOf)
    {
        if (spec is not { } s) return new TokenDecoderChain(tokenOf, null);
        var steps = new List<Func<List<string>, List<string>>>();
        Add(s, steps);
        return new TokenDecoderChain(tokenOf, steps);
    }

    public string Decode(IReadOnlyList<int> ids)
    {
        var tokens = ids.Select(_tokenOf).ToList();
        if (_steps == null) return string.Join(" ", tokens);
        foreach (var step in _steps) tokens = step(tokens);
        return string.Concat(tokens);
    }

    private static void Add(JsonElement spec, List<Func<List<string>, List<string>>> steps)
    {
        string type = JsonFields.String(spec, "type") ?? throw new InvalidDataException("decoder without 'type'");
        switch (type)
        {
            case "Sequence":
                foreach (var inner in JsonFields.Required(spec, "decoders", JsonValueKind.Array).EnumerateArray()) Add(inner, steps);
                break;
            case "ByteLevel":
                steps.Add(tokens => [ByteLevelDecoder.DecodeTokens(tokens)]);
                break;
            case "Metaspace":
                var metaspace = Metaspace.FromJson(spec);
                // tokenizers drops every replacement character of the first token when it prepends one.
                steps.Add(tokens => tokens.Select((t, i) => i == 0 && metaspace.Scheme != Metaspace.Prepend.Never
                    ? t.Replace(metaspace.Replacement.ToString(), "")
                    : t.Replace(metaspace.Replacement, ' ')).ToList());
                break;
            case "Replace":
                var replace = TextReplacement.FromJson(spec);
                steps.Add(tokens => tokens.Select(replace).ToList());
                break;
            case "ByteFallback":
                steps.Add(JoinByteTokens);
                break;
            case "Fuse":
                steps.Add(tokens => [string.Concat(tokens)]);
                break;
            case "Strip":
                string content = JsonFields.String(spec, "content") ?? " ";
                int start = JsonFields.Int(spec, "start") ?? 0, stop = JsonFields.Int(spec, "stop") ?? 0;
                if (content.Length != 1) throw new InvalidDataException("Strip decoder content should be one character");
                steps.Add(tokens => tokens.Select(t => StripChar(t, content[0], start, stop)).ToList());
                break;
            default:
                throw new NotSupportedException($"decoder type '{type}' is not supported");
        }
    }

    /// <summary>Runs of "&lt;0xNN&gt;" tokens become their UTF-8 text, or one U+FFFD per byte when invalid.</summary>
    private static List<string> JoinByteTokens(List<string> tokens)
    {
        var output = new List<string>();
        var bytes = new List<byte>();
        void Flush()
        {
            if (bytes.Count == 0) return;
            try
            {
                output.Add(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                output.AddRange(Enumerable.Repeat("\uFFFD", bytes.Count));
            }
            bytes.Clear();
        }
        foreach (var token in tokens)
        {
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>' &&
                byte.TryParse(token.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b))
            {
                bytes.Add(b);
                continue;
            }
            Flush();
            output.Add(token);
        }
        Flush();
        return output;
    }

    private static string StripChar(string token, char content, int start, int stop)
    {
        int from = 0, to = token.Length;
        while (from < to && from < start && token[from] == content) from++;
        while (to > from && token.Length - to < stop && token[to - 1] == content) to--;
        return token[from..to];
    }
}
