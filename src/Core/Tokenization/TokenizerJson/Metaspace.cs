using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// tokenizer.json's Metaspace pre-tokenizer: spaces become the replacement ("▁"), one is put in front (always, only
/// at the start of the input, or never), and the text is cut before every replacement character.
/// </summary>
internal sealed class Metaspace
{
    public enum Prepend { Always, First, Never }

    public required char Replacement { get; init; }
    public required Prepend Scheme { get; init; }
    public required bool Split { get; init; }

    /// <summary>Reads the old (add_prefix_space) and new (prepend_scheme, split) spellings of the settings.</summary>
    public static Metaspace FromJson(JsonElement spec)
    {
        string replacement = JsonFields.String(spec, "replacement") ?? "\u2581";
        if (replacement.Length != 1) throw new InvalidDataException($"Metaspace replacement '{replacement}' should be one character");
        var scheme = JsonFields.String(spec, "prepend_scheme") switch
        {
            "always" => Prepend.Always,
            "first" => Prepend.First,
            "never" => Prepend.Never,
            null => JsonFields.Bool(spec, "add_prefix_space") ?? true ? Prepend.Always : Prepend.Never,
            var other => throw new InvalidDataException($"Metaspace prepend_scheme '{other}' is not known"),
        };
        return new Metaspace { Replacement = replacement[0], Scheme = scheme, Split = JsonFields.Bool(spec, "split") ?? true };
    }

    public IEnumerable<string> Words(string text, bool atTextStart)
    {
        text = text.Replace(' ', Replacement);
        bool prepend = Scheme == Prepend.Always || (Scheme == Prepend.First && atTextStart);
        if (prepend && !text.StartsWith(Replacement)) text = Replacement + text;
        if (!Split)
        {
            if (text.Length > 0) yield return text;
            yield break;
        }
        int start = 0;
        for (int i = 1; i < text.Length; i++)
        {
            if (text[i] != Replacement) continue;
            yield return text[start..i];
            start = i;
        }
        if (start < text.Length) yield return text[start..];
    }
}
