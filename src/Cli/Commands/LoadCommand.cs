using System.Text.Json;
using Peft.Onnx.Bench.Load;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `load`: many concurrent generation requests on one loaded model for a while: every answer equal to the sequential
/// one, cancelled requests ending promptly, RSS flat after warm-up (sampled over time; JSON with --json, PNG with
/// --plot). Exit 1 when any of that fails.
/// </summary>
public sealed class LoadCommand : ICommand
{
    public string Name => "load";
    public string Summary => "concurrent requests on one model: answers equal sequential ones, cancels prompt, RSS flat";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        VerbOption.Value("onnx", "DIR", "the folder written by peft-onnx export"),
        VerbOption.Value("url", "URL", "drive a running `peft-onnx serve` over HTTP (the folder it serves as --onnx gives the reference answers)"),
        VerbOption.Value("compare-url", "URL", "with --url: drive this server first the same way, then --url's, and report the tokens/s ratio"),
        VerbOption.Value("concurrency", "N", "callers sending requests at once", "64"),
        VerbOption.Value("duration", "SECONDS", "how long the callers send requests", "120"),
        VerbOption.Value("prompt-length", "N", "tokens of each prompt", "32"),
        VerbOption.Value("new-tokens", "N", "new tokens of each request", "32"),
        VerbOption.Value("prompts", "N", "distinct prompts (each with its sequential reference answer)", "16"),
        VerbOption.Value("cancel-fraction", "X", "the share of requests cancelled part-way", "0.1"),
        VerbOption.Value("sample-interval", "SECONDS", "time between RSS samples", "1"),
        VerbOption.Value("warmup-fraction", "X", "the share of the run before RSS must stay flat", "0.2"),
        VerbOption.Value("max-rss-growth-mb", "MB", "the most RSS growth (least squares) allowed after warm-up", "32"),
        VerbOption.Value("cancel-deadline", "SECONDS", "the longest a cancelled request may take", "10"),
        VerbOption.Value("seed", "S", "seed of the prompts and of which requests are cancelled", "1"),
        VerbOption.Flag("natural-gc", "no full GC before each RSS sample"),
        VerbOption.Value("plot", "F.png", "draw RSS, heap and tokens/s over time"),
        SharedOptions.Json,
        SharedOptions.Device,
        SharedOptions.Tf32,
    ];

    public int Run(ArgReader args)
    {
        var dir = args.ExistingDir("onnx", "the folder written by peft-onnx export");
        var concurrency = args.Int("concurrency", min: 1)!.Value;
        var duration = args.Double("duration")!.Value;
        var (promptLength, newTokens, prompts) = (args.Int("prompt-length", min: 1)!.Value, args.Int("new-tokens", min: 1)!.Value, args.Int("prompts", min: 1)!.Value);
        var cancelFraction = args.Double("cancel-fraction")!.Value;
        var (interval, warmup) = (args.Double("sample-interval")!.Value, args.Double("warmup-fraction")!.Value);
        var maxGrowthMb = args.Double("max-rss-growth-mb")!.Value;
        var cancelDeadline = args.Double("cancel-deadline")!.Value;
        var seed = args.Int("seed", min: 0)!.Value;
        var (naturalGc, plot, json) = (args.Flag("natural-gc"), args.String("plot"), args.Flag("json"));
        var (url, compareUrl) = (args.String("url"), args.String("compare-url"));
        var device = DeviceArgument.Read(args);
        args.EnsureAllUsed();

        if (!(duration > 0)) throw new PeftOnnxException($"load: --duration {duration} must be > 0 (seconds)");
        if (!(interval > 0)) throw new PeftOnnxException($"load: --sample-interval {interval} must be > 0 (seconds)");
        if (cancelFraction is < 0 or > 1) throw new PeftOnnxException($"load: --cancel-fraction {cancelFraction} must be in [0, 1]");
        if (warmup is < 0 or >= 1) throw new PeftOnnxException($"load: --warmup-fraction {warmup} must be in [0, 1)");
        if (!(maxGrowthMb >= 0)) throw new PeftOnnxException($"load: --max-rss-growth-mb {maxGrowthMb} must be >= 0");
        if (!(cancelDeadline > 0)) throw new PeftOnnxException($"load: --cancel-deadline {cancelDeadline} must be > 0 (seconds)");
        int samplesAfterWarmup = (int)Math.Floor(duration * (1 - warmup) / interval);
        if (samplesAfterWarmup < RssTrend.MinSamples)
            throw new PeftOnnxException($"load: --duration {duration} with --warmup-fraction {warmup} and --sample-interval {interval} leaves {samplesAfterWarmup} RSS samples after warm-up; need at least {RssTrend.MinSamples}");
        if (plot != null && !Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(plot))))
            throw new PeftOnnxException($"load: --plot {plot}: folder not found");

        var settings = new LoadSettings(dir, device, concurrency, duration, promptLength, newTokens, prompts, cancelFraction, interval, warmup,
            (long)(maxGrowthMb * 1048576), cancelDeadline, seed, ForceGc: !naturalGc);
        if (compareUrl != null)
        {
            var comparison = ServeComparison.Run(settings, HttpLoadRunner.ParseAddress("compare-url", compareUrl), HttpLoadRunner.ParseAddress("url", url ?? throw new PeftOnnxException("load: --compare-url needs --url (the server measured against it)")), Console.Error);
            if (json) Console.WriteLine(JsonSerializer.Serialize(comparison)); else LoadTable.Print(comparison, Console.Out);
            return comparison.Passed ? 0 : 1;
        }
        if (url != null)
        {
            var remote = HttpLoadRunner.Run(settings, HttpLoadRunner.ParseAddress("url", url), Console.Error);
            if (json) Console.WriteLine(JsonSerializer.Serialize(remote)); else LoadTable.Print(remote, Console.Out);
            return remote.Passed ? 0 : 1;
        }
        var report = LoadRunner.Run(settings, Console.Error);
        if (plot != null) RssPlot.Write(plot, report);
        if (json) Console.WriteLine(JsonSerializer.Serialize(report));
        else LoadTable.Print(report, Console.Out);
        return report.Passed ? 0 : 1;
    }
}
