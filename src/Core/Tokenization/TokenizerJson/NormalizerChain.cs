using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// tokenizer.json's "normalizer" as a chain of string steps. Supported: Sequence, Prepend, Replace (String or
/// Regex), Precompiled, NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents. Hugging Face applies it to each stretch
/// of text between added tokens, which is why Prepend("▁") starts every such stretch.
/// </summary>
internal sealed class NormalizerChain
{
    private readonly IReadOnlyList<Func<string, string>> _steps;

    private NormalizerChain(IReadOnlyList<Func<string, string>> steps) => _steps = steps;

    public static readonly NormalizerChain Identity = new([]);

    public string Normalize(string text)
    {
        foreach (var step in _steps) text = step(text);
        return text;
    }

    /// <summary>Builds the chain; an unsupported type throws <see cref="NotSupportedException"/> naming it.</summary>
    public static NormalizerChain FromJson(JsonElement? spec)
    {
        var steps = new List<Func<string, string>>();
        if (spec is { } s) Add(s, steps);
        return new NormalizerChain(steps);
    }

    private static void Add(JsonElement spec, List<Func<string, string>> steps)
    {
        string type = JsonFields.String(spec, "type") ?? throw new InvalidDataException("normalizer without 'type'");
        switch (type)
        {
            case "Sequence":
                foreach (var inner in JsonFields.Required(spec, "normalizers", JsonValueKind.Array).EnumerateArray()) Add(inner, steps);
                break;
            case "Prepend":
                string prefix = JsonFields.String(spec, "prepend") ?? "";
                steps.Add(t => t.Length == 0 ? t : prefix + t);
                break;
            case "Replace":
                steps.Add(TextReplacement.FromJson(spec));
                break;
            case "Precompiled":
                var blob = JsonFields.String(spec, "precompiled_charsmap") is { Length: > 0 } b64 ? Convert.FromBase64String(b64) : [];
                if (PrecompiledCharsMap.Parse(blob) is { } map) steps.Add(map.NormalizeByGrapheme);
                break;
            case "NFC": steps.Add(t => t.Normalize(NormalizationForm.FormC)); break;
            case "NFD": steps.Add(t => t.Normalize(NormalizationForm.FormD)); break;
            case "NFKC": steps.Add(t => t.Normalize(NormalizationForm.FormKC)); break;
            case "NFKD": steps.Add(t => t.Normalize(NormalizationForm.FormKD)); break;
            case "Lowercase": steps.Add(t => t.ToLowerInvariant()); break;
            case "Strip":
                bool left = JsonFields.Bool(spec, "strip_left") ?? true, right = JsonFields.Bool(spec, "strip_right") ?? true;
                steps.Add(t => left && right ? t.Trim() : left ? t.TrimStart() : right ? t.TrimEnd() : t);
                break;
            case "StripAccents":
                steps.Add(t => new string(t.Where(c => CharUnicodeInfo.GetUnicodeCategory(c) != UnicodeCategory.NonSpacingMark).ToArray()));
                break;
            default:
                throw new NotSupportedException($"normalizer type '{type}' is not supported");
        }
    }
}

/// <summary>tokenizer.json's Replace: a literal string or a regex pattern, replaced everywhere.</summary>
internal static class TextReplacement
{
    public static Func<string, string> FromJson(JsonElement spec)
    {
        var pattern = JsonFields.Required(spec, "pattern", JsonValueKind.Object);
        string content = JsonFields.String(spec, "content") ?? "";
        if (JsonFields.String(pattern, "String") is { } literal)
            return literal.Length == 0 ? t => t : t => t.Replace(literal, content, StringComparison.Ordinal);
        if (JsonFields.String(pattern, "Regex") is { } regex)
        {
            var compiled = OnigurumaPattern.Compile(regex);
            return t => compiled.Replace(t, content.Replace("$", "$$"));
        }
        throw new InvalidDataException("Replace pattern needs 'String' or 'Regex'");
    }
}
