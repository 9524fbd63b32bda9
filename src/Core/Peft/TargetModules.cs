using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// The value of target_modules (and IA3's feedforward_modules): either one regular expression matched against
/// the full module name, or a list of names matched as the name itself or a dotted suffix of it.
/// PEFT 0.7.1 turns a list into a set; we keep the file's order so the config is written back as it was read.
/// </summary>
[JsonConverter(typeof(TargetModulesConverter))]
public sealed class TargetModules
{
    private readonly Lazy<Regex>? _regex;

    private TargetModules(string? pattern, IReadOnlyList<string>? names)
    {
        Pattern = pattern;
        Names = names;
        if (pattern is not null) _regex = new(() => PythonRegex.FullMatch(pattern));
    }

    public static TargetModules FromPattern(string pattern) => new(pattern, null);
    public static TargetModules FromNames(IEnumerable<string> names) => new(null, names.ToArray());

    /// <summary>The regular expression, when target_modules is a string.</summary>
    public string? Pattern { get; }

    /// <summary>The module names, when target_modules is a list.</summary>
    public IReadOnlyList<string>? Names { get; }

    public bool IsPattern => Pattern is not null;

    /// <summary>
    /// PEFT's check_target_module_exists without the layer filter: re.fullmatch(pattern, name) for a string;
    /// for a list, name == target or name.endswith("." + target).
    /// </summary>
    public bool Matches(string moduleName) =>
        _regex is not null
            ? _regex.Value.IsMatch(moduleName)
            : Names!.Any(t => moduleName == t || moduleName.EndsWith("." + t, StringComparison.Ordinal));

    /// <summary>
    /// IA3's feedforward check (IA3Model._check_target_module_feedforward): re.fullmatch for a string, but a plain
    /// name.endswith(target) for a list, with no dot required.
    /// </summary>
    public bool MatchesWithoutDot(string moduleName) =>
        _regex is not null
            ? _regex.Value.IsMatch(moduleName)
            : Names!.Any(t => moduleName.EndsWith(t, StringComparison.Ordinal));

    /// <summary>Shown as Python would print it: 'pattern' or ['a', 'b'].</summary>
    public override string ToString() =>
        Pattern is not null ? $"'{Pattern}'" : $"[{string.Join(", ", Names!.Select(n => $"'{n}'"))}]";
}

public sealed class TargetModulesConverter : JsonConverter<TargetModules>
{
    public override TargetModules? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.String: return TargetModules.FromPattern(reader.GetString()!);
            case JsonTokenType.StartArray:
                var names = new List<string>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.String) throw new JsonException("expected module names (strings)");
                    names.Add(reader.GetString()!);
                }
                return TargetModules.FromNames(names);
            default: throw new JsonException("expected a regular expression (string) or a list of module names");
        }
    }

    public override void Write(Utf8JsonWriter writer, TargetModules value, JsonSerializerOptions options)
    {
        if (value.Pattern is not null) { writer.WriteStringValue(value.Pattern); return; }
        writer.WriteStartArray();
        foreach (var name in value.Names!) writer.WriteStringValue(name);
        writer.WriteEndArray();
    }
}

/// <summary>
/// Python's re.match / re.fullmatch on .NET's engine. The syntax is nearly the same; the differences that show
/// up in PEFT configs are translated: named groups (?P&lt;n&gt;...) and back-references (?P=n), and \Z (Python's
/// end of string, .NET's \z).
/// </summary>
internal static class PythonRegex
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    /// <summary>re.fullmatch(pattern, s).</summary>
    public static Regex FullMatch(string pattern) => Compile(@"\A(?:" + Translate(pattern) + @")\z", pattern);

    /// <summary>re.match(pattern, s): anchored at the start only.</summary>
    public static Regex Match(string pattern) => Compile(@"\A(?:" + Translate(pattern) + ")", pattern);

    /// <summary>Why the pattern does not compile, or null when it does (for config validation).</summary>
    public static string? Error(string pattern)
    {
        try { _ = FullMatch(pattern); return null; }
        catch (PeftOnnxException ex) { return ex.Message; }
    }

    private static Regex Compile(string dotnetPattern, string original)
    {
        try { return new Regex(dotnetPattern, RegexOptions.CultureInvariant, Timeout); }
        catch (ArgumentException ex) { throw new PeftOnnxException($"invalid regular expression '{original}': {ex.Message.Split('\n')[0]}"); }
    }

    private static string Translate(string pattern)
    {
        var text = new StringBuilder(pattern.Length);
        for (int i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == '\\' && i + 1 < pattern.Length)
            {
                text.Append(pattern[i + 1] == 'Z' ? @"\z" : pattern.Substring(i, 2));
                i++;
            }
            else if (string.CompareOrdinal(pattern, i, "(?P<", 0, 4) == 0) { text.Append("(?<"); i += 3; }
            else if (string.CompareOrdinal(pattern, i, "(?P=", 0, 4) == 0)
            {
                var close = pattern.IndexOf(')', i);
                if (close < 0) { text.Append(pattern[i]); continue; }
                text.Append(@"\k<").Append(pattern, i + 4, close - i - 4).Append('>');
                i = close;
            }
            else text.Append(pattern[i]);
        }
        return text.ToString();
    }
}
