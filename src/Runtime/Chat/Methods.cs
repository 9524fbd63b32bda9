using System.Collections;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>The Python methods templates call on strings and mappings (message.content.strip(), dict.items(), ...).</summary>
internal static class Methods
{
    public static TemplateCallable? Of(object? target, string name) => target switch
    {
        string s => name switch
        {
            "strip" => (a, _) => a.Count > 0 ? s.Trim(Chars(a[0])) : s.Trim(),
            "lstrip" => (a, _) => a.Count > 0 ? s.TrimStart(Chars(a[0])) : s.TrimStart(),
            "rstrip" => (a, _) => a.Count > 0 ? s.TrimEnd(Chars(a[0])) : s.TrimEnd(),
            "startswith" => (a, _) => s.StartsWith(Str(a, 0), StringComparison.Ordinal),
            "endswith" => (a, _) => s.EndsWith(Str(a, 0), StringComparison.Ordinal),
            "upper" => (_, _) => s.ToUpperInvariant(),
            "lower" => (_, _) => s.ToLowerInvariant(),
            "title" => (_, _) => Filters.Title(s),
            "capitalize" => (_, _) => Filters.Capitalize(s),
            "replace" => (a, _) => s.Replace(Str(a, 0), Str(a, 1), StringComparison.Ordinal),
            "split" => (a, _) => (a.Count > 0 && a[0] is string sep
                ? s.Split(sep)
                : s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).Select(x => (object?)x).ToList(),
            "find" => (a, _) => (long)s.IndexOf(Str(a, 0), StringComparison.Ordinal),
            "count" => (a, _) => (long)(Str(a, 0).Length == 0 ? s.Length + 1 : (s.Length - s.Replace(Str(a, 0), "", StringComparison.Ordinal).Length) / Str(a, 0).Length),
            _ => null,
        },
        IDictionary d => name switch
        {
            "items" => (_, _) => d.Keys.Cast<object>().Select(k => (object?)new List<object?> { k, d[k] }).ToList(),
            "keys" => (_, _) => d.Keys.Cast<object?>().ToList(),
            "values" => (_, _) => d.Values.Cast<object?>().ToList(),
            "get" => (a, _) => a.Count > 0 && a[0] is string k && d.Contains(k) ? d[k] : a.Count > 1 ? a[1] : null,
            _ => null,
        },
        _ => null,
    };

    private static string Str(IReadOnlyList<object?> args, int i) =>
        i < args.Count && args[i] is string s ? s : throw new TemplateException($"argument {i + 1} must be a string");

    private static char[] Chars(object? v) => v is string s ? s.ToCharArray() : throw new TemplateException("strip characters must be a string");
}
