using System.Collections;
using System.Globalization;
using System.Text;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>Python's meaning of the values a template handles: truth, text, equality, order, +, indexing, attributes.</summary>
internal static class TemplateValues
{
    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        ICollection c => c.Count > 0,
        _ => true,
    };

    public static string Text(object? v) => v switch
    {
        Undefined => "",
        null => "None",
        bool b => b ? "True" : "False",
        string s => s,
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Python(d),
        IDictionary or IList => Repr(v),
        _ => v.ToString() ?? "",
    };

    private static string Python(double d) =>
        double.IsInteger(d) && Math.Abs(d) < 1e16 ? d.ToString("0.0", CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Python's repr, as {{ list }} prints.</summary>
    public static string Repr(object? v) => v switch
    {
        string s => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'",
        IDictionary d => "{" + string.Join(", ", d.Keys.Cast<object>().Select(k => Repr(k) + ": " + Repr(d[k]))) + "}",
        IList l => "[" + string.Join(", ", l.Cast<object?>().Select(Repr)) + "]",
        _ => Text(v),
    };

    public static bool Equal(object? a, object? b) => (a, b) switch
    {
        (Undefined, Undefined) => true,
        (null, null) => true,
        (bool x, bool y) => x == y,
        (long or double, long or double) when a is not bool && b is not bool => Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture),
        (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
        (IList x, IList y) => x.Count == y.Count && Enumerable.Range(0, x.Count).All(i => Equal(x[i], y[i])),
        _ => ReferenceEquals(a, b),
    };

    public static int Compare(object? a, object? b) => (a, b) switch
    {
        (string x, string y) => string.CompareOrdinal(x, y),
        (long or double or bool, long or double or bool) => Number(a).CompareTo(Number(b)),
        _ => throw new TemplateException($"cannot order {TypeName(a)} and {TypeName(b)}"),
    };

    public static double Number(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new TemplateException($"expected a number, got {TypeName(v)}"),
    };

    public static string TypeName(object? v) => v switch
    {
        null => "none",
        Undefined => "undefined",
        string => "string",
        long or double => "number",
        bool => "boolean",
        IDictionary => "mapping",
        IList => "list",
        _ => v.GetType().Name,
    };

    public static object? Add(object? a, object? b) => (a, b) switch
    {
        (string x, string y) => x + y,
        (long x, long y) => x + y,
        (long or double, long or double) => Number(a) + Number(b),
        (IList x, IList y) => x.Cast<object?>().Concat(y.Cast<object?>()).ToList(),
        _ => throw new TemplateException($"cannot add {TypeName(a)} and {TypeName(b)}"),
    };

    public static object? Arithmetic(string op, object? a, object? b)
    {
        if (op == "*" && a is string s && b is long n) return string.Concat(Enumerable.Repeat(s, (int)Math.Max(0, n)));
        if (a is long x && b is long y && op is "-" or "*" or "//" or "%")
            return op switch
            {
                "-" => x - y,
                "*" => x * y,
                "//" => y == 0 ? throw new TemplateException("integer division by zero") : (long)Math.Floor((double)x / y),
                _ => y == 0 ? throw new TemplateException("modulo by zero") : ((x % y) + y) % y,
            };
        double p = Number(a), q = Number(b);
        return op switch
        {
            "-" => p - q,
            "*" => p * q,
            "/" => p / q,
            "//" => Math.Floor(p / q),
            "%" => p - q * Math.Floor(p / q),
            "**" => Math.Pow(p, q),
            _ => throw new TemplateException($"unknown operator {op}"),
        };
    }

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string t ? s.Contains(t, StringComparison.Ordinal) : throw new TemplateException($"'in <string>' needs a string, got {TypeName(item)}"),
        IDictionary d => item != null && d.Contains(item),
        IList l => l.Cast<object?>().Any(x => Equal(x, item)),
        Undefined => false,
        _ => throw new TemplateException($"'in' needs a string, list or mapping, got {TypeName(container)}"),
    };

    /// <summary>x[key] and x.name: a missing key or attribute is undefined, as Jinja's default undefined.</summary>
    public static object? Item(object? target, object? key)
    {
        switch (target)
        {
            case IDictionary d when key is string k:
                return d.Contains(k) ? d[k] : (object?)Methods.Of(target, k) ?? Undefined.Value;
            case IList l when key is long i:
                int index = (int)(i < 0 ? l.Count + i : i);
                return index >= 0 && index < l.Count ? l[index] : Undefined.Value;
            case string s when key is long i:
                int at = (int)(i < 0 ? s.Length + i : i);
                return at >= 0 && at < s.Length ? s[at].ToString() : Undefined.Value;
            case LoopInfo loop when key is string k:
                return loop.Get(k);
            case Undefined:
                throw new TemplateException($"'{Text(key)}' of an undefined value");
            default:
                return key is string name ? (object?)Methods.Of(target, name) ?? Undefined.Value : Undefined.Value;
        }
    }

    public static object? Slice(object? target, long? start, long? stop, long? step)
    {
        IList<object?> items = target switch
        {
            string s => s.Select(c => (object?)c.ToString()).ToList(),
            IList l => l.Cast<object?>().ToList(),
            _ => throw new TemplateException($"cannot slice {TypeName(target)}"),
        };
        int n = items.Count;
        long st = step ?? 1;
        if (st == 0) throw new TemplateException("slice step is zero");
        var result = new List<object?>();
        if (st > 0)
        {
            long a = Clamp(start ?? 0, n), b = Clamp(stop ?? n, n);
            for (long i = a; i < b; i += st) result.Add(items[(int)i]);
        }
        else
        {
            long a = start is { } s0 ? Math.Min(s0 < 0 ? s0 + n : s0, n - 1) : n - 1;
            long b = stop is { } e0 ? (e0 < 0 ? e0 + n : e0) : -1;
            for (long i = a; i > b && i >= 0; i += st) result.Add(items[(int)i]);
        }
        return target is string ? string.Concat(result.Cast<string>()) : result;
    }

    private static long Clamp(long i, int n) => Math.Clamp(i < 0 ? i + n : i, 0, n);

    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        string s => s.Select(c => (object?)c.ToString()),
        IDictionary d => d.Keys.Cast<object?>(),
        IList l => l.Cast<object?>(),
        Undefined or null => [],
        _ => throw new TemplateException($"cannot loop over {TypeName(v)}"),
    };

    /// <summary>json.dumps as transformers' tojson calls it (ensure_ascii off, optional indent).</summary>
    public static string Json(object? v, int? indent, int depth = 0)
    {
        string Pad(int d) => indent is { } i ? "\n" + new string(' ', i * d) : "";
        string sep = indent is null ? ", " : ",";
        switch (v)
        {
            case null or Undefined: return "null";
            case bool b: return b ? "true" : "false";
            case long or double: return Text(v);
            case string s:
                var sb = new StringBuilder("\"");
                foreach (var c in s)
                    sb.Append(c switch
                    {
                        '"' => "\\\"", '\\' => "\\\\", '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", '\b' => "\\b", '\f' => "\\f",
                        < ' ' => $"\\u{(int)c:x4}",
                        _ => c.ToString(),
                    });
                return sb.Append('"').ToString();
            case IDictionary d:
                if (d.Count == 0) return "{}";
                return "{" + string.Join(sep, d.Keys.Cast<object>().Select(k => Pad(depth + 1) + Json(Text(k), indent) + ": " + Json(d[k], indent, depth + 1))) + Pad(depth) + "}";
            case IList l:
                if (l.Count == 0) return "[]";
                return "[" + string.Join(sep, l.Cast<object?>().Select(x => Pad(depth + 1) + Json(x, indent, depth + 1))) + Pad(depth) + "]";
            default: return Json(Text(v), indent);
        }
    }
}
