using System.Globalization;
using Peft.Onnx.Core;

namespace Peft.Onnx.Cli;

/// <summary>
/// The options one verb was given, already split by the command-line parser, read by name. A value not given falls
/// back to the option's declared default. Every option a mode of a verb reads is marked by reading it;
/// <see cref="EnsureAllUsed"/> then rejects a given option that mode has no use for, so it is an error, not ignored.
/// </summary>
public sealed class ArgReader
{
    private readonly string _verb;
    private readonly IReadOnlyDictionary<string, IReadOnlyList<string>> _options;
    private readonly Dictionary<string, string> _defaults = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal) { SharedOptions.Verbose.Name };

    /// <param name="given">Each option given, by name: its values in order (none for a flag; several for a repeated option).</param>
    /// <param name="declared">The verb's options (their defaults apply to those not given).</param>
    public ArgReader(string verb, IReadOnlyDictionary<string, IReadOnlyList<string>> given, IReadOnlyList<VerbOption> declared)
    {
        _verb = verb;
        _options = given;
        foreach (var o in declared)
            if (o.Default is not null) _defaults[o.Name] = o.Default;
    }

    /// <summary>Whether the option was on the command line (its default does not count).</summary>
    public bool Given(string name) => _options.ContainsKey(name);

    public bool Flag(string name)
    {
        _used.Add(name);
        if (!_options.TryGetValue(name, out var v)) return false;
        if (v.Count > 0) throw new PeftOnnxException($"{_verb}: --{name} takes no value (got '{v[0]}')");
        return true;
    }

    public string? String(string name)
    {
        _used.Add(name);
        if (!_options.TryGetValue(name, out var v)) return _defaults.GetValueOrDefault(name);
        return v.Count switch
        {
            0 => throw new PeftOnnxException($"{_verb}: --{name} needs a value"),
            1 => v[0],
            _ => throw new PeftOnnxException($"{_verb}: option --{name} given twice"),
        };
    }

    /// <summary>Every value of an option that may be given several times (`--adapter a=DIR --adapter b=DIR`), in order.</summary>
    public IReadOnlyList<string> Strings(string name)
    {
        _used.Add(name);
        return _options.TryGetValue(name, out var v) ? v : [];
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
            throw new PeftOnnxException($"{_verb}: unknown option --{unknown[0]} (known: {string.Join(", ", _used.Where(u => u != SharedOptions.Verbose.Name).Order().Select(u => "--" + u))})");
    }
}
