using Peft.Onnx.Cli;
using Peft.Onnx.Core;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>The command line's conventions: --help per verb, --version, a suggestion for a typo, `--name=value`.</summary>
public class CommandLineConventionTests
{
    public static TheoryData<string> VerbNames()
    {
        var data = new TheoryData<string>();
        foreach (var verb in Verbs.All()) data.Add(verb.Name);
        return data;
    }

    [Theory, MemberData(nameof(VerbNames))]
    public void Verb_help_exits_0_and_lists_every_option_with_its_default(string name)
    {
        var verb = Verbs.All().Single(v => v.Name == name);
        var r = CliRunner.Run(name, "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Stderr);
        Assert.Contains($"peft-onnx {name}", r.Stdout);
        foreach (var option in verb.Options)
        {
            var line = Assert.Single(r.Stdout.Split('\n'), l => l.TrimStart().StartsWith($"--{option.Name} ", StringComparison.Ordinal) || l.Trim() == $"--{option.Name}"
                || l.TrimStart().StartsWith($"--{option.Name}  ", StringComparison.Ordinal));
            Assert.Contains(option.Description, line);
            if (option.Default is { } fallback) Assert.Contains($"[default: {fallback}]", line);
        }
    }

    [Fact]
    public void Tool_help_lists_every_verb_and_exits_0()
    {
        var r = CliRunner.Run("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var verb in Verbs.All()) Assert.Contains(verb.Name, r.Stdout);
    }

    [Fact]
    public void No_arguments_print_the_help_and_exit_2()
    {
        var r = CliRunner.Run();
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("generate", r.Stdout);
    }

    [Fact]
    public void Version_prints_the_version_and_exits_0()
    {
        var r = CliRunner.Run("--version");
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"^\d+\.\d+\.\d+", r.Stdout.Trim());
    }

    [Fact]
    public void Mistyped_option_is_one_line_with_a_suggestion_and_exit_2()
    {
        var r = CliRunner.Run("generate", "--onnx", Paths.TempDir(), "--prompt", "hi", "--max-new-token", "3");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal("error: generate: unknown option --max-new-token (did you mean --max-new-tokens?)", r.Stderr.Trim());
    }

    [Fact]
    public void Mistyped_verb_is_one_line_with_a_suggestion_and_exit_2()
    {
        var r = CliRunner.Run("genrate", "--onnx", "x");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal("error: unknown verb 'genrate' (did you mean 'generate'?)", r.Stderr.Trim());
    }

    [Fact]
    public void Unknown_verb_far_from_any_lists_the_verbs()
    {
        var r = CliRunner.Run("frobnicate");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("unknown verb 'frobnicate' (expected one of inspect, forward, train", r.Stderr);
    }

    [Fact]
    public void Name_equals_value_and_name_space_value_read_the_same()
    {
        var spaced = CliRunner.Run("inspect", "--base", Paths.Case("bloom", "base_model"), "--json");
        var joined = CliRunner.Run("inspect", $"--base={Paths.Case("bloom", "base_model")}", "--json");
        Assert.Equal(0, spaced.ExitCode);
        Assert.Equal(spaced.Stdout, joined.Stdout);
    }

    [Theory]
    [InlineData(new[] { "--base" }, "inspect: --base needs a value")]
    [InlineData(new[] { "--base", "a", "--base", "b" }, "inspect: option --base given twice")]
    [InlineData(new[] { "stray" }, "inspect: unexpected argument 'stray' (options start with --)")]
    [InlineData(new[] { "--json=yes" }, "inspect: unexpected argument 'yes'")]
    public void Malformed_option_is_one_line_and_exit_2(string[] args, string message)
    {
        var r = CliRunner.Run(["inspect", .. args]);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("error: " + message, r.Stderr.Trim());
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public void A_prompt_starting_with_at_is_taken_literally()
    {
        var inspect = Verbs.All().Single(v => v.Name == "generate");
        var args = VerbLine.Parse(inspect, ["--onnx", "x", "--prompt", "@user hello"]);
        Assert.Equal("@user hello", args.String("prompt"));
    }

    [Fact]
    public void Default_applies_when_not_given_and_does_not_count_as_given()
    {
        var load = Verbs.All().Single(v => v.Name == "load");
        var args = VerbLine.Parse(load, ["--onnx", "x"]);
        Assert.Equal(64, args.Int("concurrency"));
        Assert.False(args.Given("concurrency"));
    }

    [Theory]
    [InlineData("max-new-token", "max-new-tokens")]
    [InlineData("devcie", "device")]
    [InlineData("onx", "onnx")]
    [InlineData("bogus", null)]
    public void Suggestion_is_the_nearest_known_name(string typed, string? expected) =>
        Assert.Equal(expected, Suggestion.Closest(typed, ["onnx", "device", "max-new-tokens", "base", "prompt"]));

    [Fact]
    public void Repeatable_option_keeps_every_value_in_order_and_others_refuse_a_second()
    {
        var verb = new ProbeVerb();
        var args = VerbLine.Parse(verb, ["--adapter", "a=one", "--adapter=b=two", "--out", "x"]);
        Assert.Equal(["a=one", "b=two"], args.Strings("adapter"));
        Assert.Equal("x", args.String("out"));
        Assert.Empty(VerbLine.Parse(verb, ["--out", "x"]).Strings("adapter"));
        var twice = Assert.Throws<PeftOnnxException>(() => VerbLine.Parse(verb, ["--out", "x", "--out", "y"]));
        Assert.Equal("probe: option --out given twice", twice.Message);
    }

    [Fact]
    public void Verbose_adds_the_stack_trace()
    {
        var r = CliRunner.Run("inspect", "--base", Path.Combine(Paths.TempDir(), "nowhere"), "--verbose");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("   at ", r.Stderr);
    }

    /// <summary>A verb with a repeatable option, as a many-adapter export will have.</summary>
    private sealed class ProbeVerb : ICommand
    {
        public string Name => "probe";
        public string Summary => "a verb for parser tests";
        public IReadOnlyList<VerbOption> Options { get; } =
        [
            VerbOption.Repeated("adapter", "NAME=DIR", "an adapter, by name"),
            VerbOption.Value("out", "DIR", "where to write"),
        ];
        public int Run(ArgReader args) => 0;
    }
}
