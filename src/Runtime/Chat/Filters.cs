using System.Collections;
using System.Globalization;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>The filters chat templates use: trim, length, upper, lower, tojson, string, default, join, first, last, ...</summary>
internal static class Filters
{
    public static object? Apply(string name, object? v, IReadOnlyList<object?> a, IReadOnlyDictionary<string, object?> kw) => name switch
    {
        "trim" => TemplateValues.Text(v).Trim(),
        "length" or "count" => v switch
        {
            string s => (long)s.Length,
            ICollection c => (long)c.Count,
            _ => throw new TemplateException($"length of {TemplateValues.TypeName(v)}"),
        },
        "upper" => TemplateValues.Text(v).ToUpperInvariant(),
        "lower" => TemplateValues.Text(v).ToLowerInvariant(),
        "title" => Title(TemplateValues.Text(v)),
        "capitalize" => Capitalize(TemplateValues.Text(v)),
        "string" => TemplateValues.Text(v),
        "safe" or "e" or "escape" => v,
        "int" => v switch
        {
            long l => l,
            double d => (long)d,
            string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) => n,
            _ => a.Count > 0 ? a[0] : 0L,
        },
        "float" => v is long or double ? TemplateValues.Number(v) : double.TryParse(TemplateValues.Text(v), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) ? f : 0.0,
        "default" or "d" => v is Undefined || (a.Count > 1 && TemplateValues.Truthy(a[1]) && !TemplateValues.Truthy(v)) ? (a.Count > 0 ? a[0] : "") : v,
        "join" => string.Join(a.Count > 0 ? TemplateValues.Text(a[0]) : "", TemplateValues.Iterate(v).Select(TemplateValues.Text)),
        "first" => TemplateValues.Iterate(v).FirstOrDefault(Undefined.Value),
        "last" => v is IList l && l.Count > 0 ? l[^1] : v is string s2 && s2.Length > 0 ? s2[^1].ToString() : Undefined.Value,
        "list" => TemplateValues.Iterate(v).ToList(),
        "reverse" => v is string s3 ? new string(s3.Reverse().ToArray()) : TemplateValues.Iterate(v).Reverse().ToList(),
        "replace" => TemplateValues.Text(v).Replace(TemplateValues.Text(a[0]), TemplateValues.Text(a[1]), StringComparison.Ordinal),
        "items" => v is IDictionary d ? d.Keys.Cast<object>().Select(k => (object?)new List<object?> { k, d[k] }).ToList() : throw new TemplateException("items of a non-mapping"),
        "tojson" => TemplateValues.Json(v, (a.Count > 0 ? a[0] : kw.GetValueOrDefault("indent")) is long i ? (int)i : null),
        "selectattr" or "rejectattr" => SelectAttr(name == "selectattr", v, a),
        "map" => kw.TryGetValue("attribute", out var attr)
            ? TemplateValues.Iterate(v).Select(x => TemplateValues.Item(x, attr)).ToList()
            : TemplateValues.Iterate(v).Select(x => Apply(TemplateValues.Text(a[0]), x, [.. a.Skip(1)], kw)).ToList(),
        _ => throw new TemplateException($"the filter '{name}' is not supported"),
    };

    private static List<object?> SelectAttr(bool select, object? v, IReadOnlyList<object?> a)
    {
        if (a.Count == 0) throw new TemplateException("selectattr needs an attribute name");
        var attribute = a[0];
        return TemplateValues.Iterate(v).Where(x =>
        {
            var value = TemplateValues.Item(x, attribute);
            bool ok = a.Count > 1 ? Tests.Check(TemplateValues.Text(a[1]), value, [.. a.Skip(2)]) : TemplateValues.Truthy(value);
            return ok == select;
        }).ToList();
    }

    public static string Title(string s) => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant());

    public static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
}
