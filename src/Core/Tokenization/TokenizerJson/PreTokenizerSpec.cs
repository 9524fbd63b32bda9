using System.Text.Json;
using System.Text.RegularExpressions;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// The tokenizer.json pre-tokenizers we support: ByteLevel (GPT-2 regex or none, optional prefix space),
/// Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)] as in newer byte-level files, and Metaspace.
/// </summary>
internal sealed record PreTokenizerSpec(bool ByteLevel, bool PrefixSpace, Regex? WordPattern, Metaspace? Metaspace)
{
    public static readonly PreTokenizerSpec None = new(false, false, null, null);

    public static PreTokenizerSpec FromJson(JsonElement? spec)
    {
        if (spec is not { } s) return None;
        var parts = new List<JsonElement>();
        Flatten(s, parts);

        PreTokenizerSpec result = None;
        Regex? split = null;
        foreach (var part in parts)
        {
            string type = JsonFields.String(part, "type")!;
            switch (type)
            {
                case "ByteLevel":
                    bool useRegex = JsonFields.Bool(part, "use_regex") ?? true;
                    if (useRegex && split != null)
                        throw new NotSupportedException("pre_tokenizer Split followed by ByteLevel(use_regex=true) is not supported");
                    result = result with
                    {
                        ByteLevel = true,
                        PrefixSpace = JsonFields.Bool(part, "add_prefix_space") ?? true,
                        WordPattern = useRegex ? ByteLevelBpeEncoder.Gpt2WordPattern() : result.WordPattern,
                    };
                    break;
                case "Split":
                    if (split != null) throw new NotSupportedException("pre_tokenizer with more than one Split is not supported");
                    split = SplitPattern(part);
                    result = result with { WordPattern = split };
                    break;
                case "Metaspace":
                    result = result with { Metaspace = Metaspace.FromJson(part) };
                    break;
                default:
                    throw new NotSupportedException($"pre_tokenizer type '{type}' is not supported (expected ByteLevel, Split + ByteLevel or Metaspace)");
            }
        }
        if (result.Metaspace != null && (result.ByteLevel || split != null))
            throw new NotSupportedException("pre_tokenizer mixing Metaspace with ByteLevel/Split is not supported");
        if (split != null && !result.ByteLevel)
            throw new NotSupportedException("pre_tokenizer Split is only supported before ByteLevel");
        return result;
    }

    private static void Flatten(JsonElement spec, List<JsonElement> parts)
    {
        string type = JsonFields.String(spec, "type") ?? throw new InvalidDataException("pre_tokenizer without 'type'");
        if (type != "Sequence")
        {
            parts.Add(spec);
            return;
        }
        foreach (var inner in JsonFields.Required(spec, "pretokenizers", JsonValueKind.Array).EnumerateArray()) Flatten(inner, parts);
    }

    private static Regex SplitPattern(JsonElement split)
    {
        string behavior = JsonFields.String(split, "behavior") ?? "Isolated";
        if (behavior != "Isolated" || (JsonFields.Bool(split, "invert") ?? false))
            throw new NotSupportedException($"pre_tokenizer Split with behavior '{behavior}' is not supported (expected Isolated)");
        var pattern = JsonFields.Required(split, "pattern", JsonValueKind.Object);
        if (JsonFields.String(pattern, "Regex") is { } regex) return OnigurumaPattern.Compile(regex);
        if (JsonFields.String(pattern, "String") is { } literal) return new Regex(Regex.Escape(literal));
        throw new InvalidDataException("Split pattern needs 'Regex' or 'String'");
    }
}
