using System.CommandLine;
using System.CommandLine.Parsing;

namespace Peft.Onnx.Cli;

/// <summary>The one-line error for a command line the parser rejected, naming the option and, for a typo, the likely one.</summary>
public static class ParseFailure
{
    public static string Describe(ICommand verb, ParseResult result)
    {
        if (result.UnmatchedTokens.Count > 0)
        {
            var token = result.UnmatchedTokens[0];
            if (!token.StartsWith('-') || token.Length == 1) return $"{verb.Name}: unexpected argument '{token}' (options start with --)";
            var name = token.TrimStart('-').Split('=', ':')[0];
            var names = verb.Options.Select(o => o.Name).Append(SharedOptions.Verbose.Name).ToList();
            return Suggestion.Closest(name, names) is { } near
                ? $"{verb.Name}: unknown option --{name} (did you mean --{near}?)"
                : $"{verb.Name}: unknown option --{name} (known: {string.Join(", ", names.Order(StringComparer.Ordinal).Select(n => "--" + n))})";
        }
        var error = result.Errors[0];
        if (error.SymbolResult is OptionResult option)
        {
            var name = option.Option.Name;
            if (option.Tokens.Count == 0) return $"{verb.Name}: {name} needs a value";
            if (option.Tokens.Count > 1) return $"{verb.Name}: option {name} given twice";
        }
        return $"{verb.Name}: {error.Message}";
    }
}
