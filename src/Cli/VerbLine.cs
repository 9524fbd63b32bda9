using System.CommandLine;
using System.CommandLine.Parsing;
using Peft.Onnx.Core;

namespace Peft.Onnx.Cli;

/// <summary>
/// A verb as System.CommandLine sees it: one Command with the verb's options (their descriptions, value names and
/// defaults are what --help prints), and the way back from a parse to an <see cref="ArgReader"/>.
/// </summary>
public static class VerbLine
{
    /// <summary>Arguments are taken literally: no @file expansion (a prompt may start with @).</summary>
    public static ParserConfiguration Parsing() => new() { ResponseFileTokenReplacer = null };

    public static Command Build(ICommand verb)
    {
        var command = new Command(verb.Name, verb.Summary);
        foreach (var option in verb.Options.Append(SharedOptions.Verbose)) command.Add(ToOption(option));
        return command;
    }

    /// <summary>Parses one verb's arguments (the verb itself not included); bad ones throw a one-line PeftOnnxException.</summary>
    public static ArgReader Parse(ICommand verb, IReadOnlyList<string> args) => Read(verb, Build(verb).Parse(args, Parsing()));

    public static ArgReader Read(ICommand verb, ParseResult result)
    {
        if (result.Errors.Count > 0) throw new PeftOnnxException(ParseFailure.Describe(verb, result));
        var given = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var option in result.CommandResult.Children.OfType<OptionResult>().Where(o => !o.Implicit))
            given[option.Option.Name[2..]] = option.Tokens.Select(t => t.Value).ToList();
        return new ArgReader(verb.Name, given, verb.Options);
    }

    private static Option ToOption(VerbOption option)
    {
        if (option.IsFlag) return new Option<bool>("--" + option.Name) { Description = option.Description, Arity = ArgumentArity.Zero };
        if (option.Repeatable)
            return new Option<string[]>("--" + option.Name) { Description = option.Description, HelpName = option.ValueName, Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false };
        var value = new Option<string>("--" + option.Name) { Description = option.Description, HelpName = option.ValueName };
        if (option.Default is { } fallback) value.DefaultValueFactory = _ => fallback;
        return value;
    }
}
