using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>Reads tokenizer.json's "post_processor" for single sequences: TemplateProcessing, Bert/Roberta
/// processing (cls ... sep), ByteLevel (adds nothing) and Sequence.</summary>
internal static class PostProcessorTemplate
{
    public static SpecialTokenTemplate FromJson(JsonElement? spec)
    {
        if (spec is not { } s) return SpecialTokenTemplate.None;
        var prefix = new List<int>();
        var suffix = new List<int>();
        Add(s, prefix, suffix);
        return new SpecialTokenTemplate(prefix, suffix);
    }

    private static void Add(JsonElement spec, List<int> prefix, List<int> suffix)
    {
        string type = JsonFields.String(spec, "type") ?? throw new InvalidDataException("post_processor without 'type'");
        switch (type)
        {
            case "ByteLevel":
                break;
            case "Sequence":
                foreach (var inner in JsonFields.Required(spec, "processors", JsonValueKind.Array).EnumerateArray()) Add(inner, prefix, suffix);
                break;
            case "BertProcessing" or "RobertaProcessing":
                prefix.Add(PairId(JsonFields.Required(spec, "cls", JsonValueKind.Array), "cls"));
                suffix.Add(PairId(JsonFields.Required(spec, "sep", JsonValueKind.Array), "sep"));
                break;
            case "TemplateProcessing":
                var specialTokens = JsonFields.Get(spec, "special_tokens");
                bool afterSequence = false;
                foreach (var item in JsonFields.Required(spec, "single", JsonValueKind.Array).EnumerateArray())
                {
                    if (JsonFields.Get(item, "Sequence") != null)
                    {
                        afterSequence = true;
                        continue;
                    }
                    var special = JsonFields.Get(item, "SpecialToken") ?? throw new InvalidDataException("template item is neither Sequence nor SpecialToken");
                    string name = JsonFields.String(special, "id") ?? throw new InvalidDataException("template SpecialToken without 'id'");
                    var entry = specialTokens is { } map ? JsonFields.Get(map, name) : null;
                    var ids = entry is { } e ? JsonFields.Required(e, "ids", JsonValueKind.Array) : throw new InvalidDataException($"template token '{name}' is not in special_tokens");
                    (afterSequence ? suffix : prefix).AddRange(ids.EnumerateArray().Select(i => i.GetInt32()));
                }
                break;
            default:
                throw new NotSupportedException($"post_processor type '{type}' is not supported");
        }
    }

    private static int PairId(JsonElement pair, string key) =>
        pair.GetArrayLength() == 2 && pair[1].ValueKind == JsonValueKind.Number
            ? pair[1].GetInt32()
            : throw new InvalidDataException($"post_processor '{key}' should be [token, id]");
}
