namespace Peft.Onnx.Cli;

/// <summary>
/// One option of a verb, declared once: its name (without --), the one-line description --help prints, the value
/// it stands for when not given (null: none, or one that depends on other options) and, for options that take a
/// value, what that value looks like (DIR, N, cpu|cuda|auto, ...). Flags take no value; a repeatable option may be
/// given several times, one value each.
/// </summary>
public sealed record VerbOption(string Name, string Description, string? ValueName, string? Default = null, bool Repeatable = false)
{
    public bool IsFlag => ValueName is null;

    public static VerbOption Flag(string name, string description) => new(name, description, null);

    public static VerbOption Value(string name, string valueName, string description, string? defaultValue = null) =>
        new(name, description, valueName, defaultValue);

    public static VerbOption Repeated(string name, string valueName, string description) => new(name, description, valueName, Repeatable: true);
}
