using System.CommandLine;
using System.CommandLine.Help;
using Peft.Onnx.Core;

namespace Peft.Onnx.Cli;

/// <summary>
/// peft-onnx's command line: --help (the tool's or a verb's), --version, the verb's run. Bad input is one line on
/// stderr and exit 2; any other failure one line and exit 1; --verbose adds the stack trace.
/// </summary>
public static class CommandLineApp
{
    public const string Description = "peft-onnx: train PEFT adapters, compile them into ONNX, serve them with ONNX Runtime.";

    public static int Run(IReadOnlyList<ICommand> verbs, string[] args)
    {
        var root = new RootCommand(Description);
        root.Directives.Clear();
        foreach (var verb in verbs) root.Add(VerbLine.Build(verb));
        var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        if (args.Length == 0)
        {
            root.Parse(["--help"], VerbLine.Parsing()).Invoke(invocation);
            return 2;
        }
        if (args[0] == "help") args = ["--help", .. args[1..]];

        var verbose = args.Contains("--" + SharedOptions.Verbose.Name);
        var result = root.Parse(args, VerbLine.Parsing());
        var chosen = verbs.FirstOrDefault(v => result.CommandResult.Command != root && v.Name == result.CommandResult.Command.Name);
        try
        {
            if (result.Action is HelpAction) return result.Invoke(invocation);
            if (chosen is null)
            {
                if (result.Errors.Count == 0) return result.Invoke(invocation); // --version
                throw new PeftOnnxException(UnknownVerb(args[0], verbs));
            }
            return chosen.Run(VerbLine.Read(chosen, result));
        }
        catch (PeftOnnxException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            if (verbose) Console.Error.WriteLine(ex);
            return 2;
        }
        catch (Exception ex) when (!verbose)
        {
            Console.Error.WriteLine($"error: {ex.GetType().Name}: {ex.Message.Split('\n')[0]} (run with --verbose for details)");
            return 1;
        }
    }

    private static string UnknownVerb(string typed, IReadOnlyList<ICommand> verbs) =>
        Suggestion.Closest(typed, verbs.Select(v => v.Name)) is { } near
            ? $"unknown verb '{typed}' (did you mean '{near}'?)"
            : $"unknown verb '{typed}' (expected one of {string.Join(", ", verbs.Select(v => v.Name))})";
}
