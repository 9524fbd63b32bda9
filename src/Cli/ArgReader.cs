using System.Globalization;
using Peft.Onnx.Core;

namespace Peft.Onnx.Cli;

/// <summary>
/// The options of one verb: `--name value` and `--flag`. Every option a verb reads is declared by reading it;
/// <see cref="EnsureAllUsed"/> then rejects anything left over, so a typo is an error, not a silent default.
/// </summary>
public sealed class ArgReader
{
    private readonly string _verb;
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public ArgReader(string verb, IReadOnlyList<string> args)
    {
        _verb = verb;
        for (int i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new PeftOnnxException($"{verb}: unexpected argument '{a}' (options start with --)");
            string name = a[2..];
            string? value = null;
            var eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (i + 1 < args.Count && !(args[i + 1].StartsWith("--", StringComparison.Ordinal) && args[i + 1].Length > 2)) value = args[++i];
            if (!_options.TryAdd(name, value)) throw new PeftOnnxException($"{verb}: option --{name} given twice");
        }
    }

    public bool Flag(string name)
    {
        _used.Add(name);
        if (!_options.TryGetValue(name, out var v)) return false;
        if (v != null) throw new PeftOnnxException($"{_verb}: --{name} takes no value (got '{v}')");
        return true;
    }

    public string? String(string name)
    {
        _used.Add(name);
        if (!_options.TryGetValue(name, out var v)) return null;
        return v ?? throw new PeftOnnxException($"{_verb}: --{name} needs a value");
    }

    public string Required(string name, string what) =>
        String(name) ?? throw new PeftOnnxException($"{_verb}: missing --{name} ({what})");

    public string ExistingDir(string name, string what)
    {
        var dir = Required(name, what);
        if (!Directory.Exists(dir)) throw new PeftOnnxException($"{_verb}: --{name} {dir}: folder not found");
        return dir;
    }

    public string? OptionalExistingDir(string name)
    {
        var dir = String(name);
        if (dir != null && !Directory.Exists(dir)) throw new PeftOnnxException($"{_verb}: --{name} {dir}: folder not found");
        return dir;
    }

    public string ExistingFile(string name, string what)
    {
        var file = Required(name, what);
        if (!File.Exists(file)) throw new PeftOnnxException($"{_verb}: --{name} {file}: file not found");
        return file;
    }

    public int? Int(string name, int min = int.MinValue)
    {
        var s = String(name);
        if (s == null) return null;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < min)
            throw new PeftOnnxException($"{_verb}: --{name} '{s}' must be an integer >= {min}");
        return v;
    }

    public double? Double(string name)
    {
        var s = String(name);
        if (s == null) return null;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
            throw new PeftOnnxException($"{_verb}: --{name} '{s}' must be a number");
        return v;
    }

    public string Choice(string name, string fallback, params string[] allowed)
    {
        var s = String(name) ?? fallback;
        if (!allowed.Contains(s)) throw new PeftOnnxException($"{_verb}: --{name} '{s}' is not one of {string.Join(", ", allowed)}");
        return s;
    }

    public void EnsureAllUsed()
    {
        var unknown = _options.Keys.Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new PeftOnnxException($"{_verb}: unknown option --{unknown[0]} (known: {string.Join(", ", _used.Order().Select(u => "--" + u))})");
    }
}
