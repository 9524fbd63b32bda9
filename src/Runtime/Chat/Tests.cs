using System.Collections;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>The tests of "x is ...": defined, undefined, none, string, number, mapping, sequence, iterable, true, false, odd, even.</summary>
internal static class Tests
{
    public static bool Check(string name, object? v, IReadOnlyList<object?> args) => name switch
    {
        "defined" => v is not Undefined,
        "undefined" => v is Undefined,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "float" => v is double,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is IDictionary,
        "sequence" or "iterable" => v is string or IList or IDictionary,
        "callable" => v is TemplateCallable,
        "odd" => TemplateValues.Number(v) % 2 == 1,
        "even" => TemplateValues.Number(v) % 2 == 0,
        "divisibleby" => TemplateValues.Number(v) % TemplateValues.Number(args[0]) == 0,
        "eq" or "equalto" or "==" => TemplateValues.Equal(v, args[0]),
        "ne" or "!=" => !TemplateValues.Equal(v, args[0]),
        "in" => TemplateValues.Contains(args[0], v),
        _ => throw new TemplateException($"the test '{name}' is not supported"),
    };
}
