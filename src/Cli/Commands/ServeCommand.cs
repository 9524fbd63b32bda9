using Peft.Onnx.Server;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `serve`: an OpenAI-compatible endpoint (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics)
/// over one exported folder, with continuous batching. Runs until SIGTERM or Ctrl+C, then exits 0 once the
/// requests in flight finished.
/// </summary>
public sealed class ServeCommand : ICommand
{
    public string Name => "serve";
    public string Summary => "an OpenAI-compatible HTTP endpoint with continuous batching over an exported folder";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        VerbOption.Value("onnx", "DIR", "the folder written by peft-onnx export"),
        VerbOption.Value("host", "ADDRESS", "the address to listen on (another than loopback warns without --api-key)", "127.0.0.1"),
        VerbOption.Value("port", "N", "the port (0 picks a free one; the address is printed on stderr)", "8000"),
        VerbOption.Value("api-key", "KEY", "require 'Authorization: Bearer KEY' on every endpoint but /health"),
        VerbOption.Value("max-batch-size", "N", "requests generated together at most", "32"),
        VerbOption.Value("max-queue", "N", "requests waiting at most (one more gets 429)", "256"),
        VerbOption.Value("batching", "MODE", "continuous (requests join one running batch) or per-request (one generator each)", "continuous"),
        VerbOption.Value("prefix-cache-mb", "N", "MB of prefilled prompts kept for requests with the same prompt (0 disables)", "64"),
        SharedOptions.Device,
        SharedOptions.Tf32,
    ];

    public int Run(ArgReader args)
    {
        var dir = args.ExistingDir("onnx", "the folder written by peft-onnx export");
        var host = args.String("host") ?? "127.0.0.1";
        var port = args.Int("port", min: 0)!.Value;
        var apiKey = args.String("api-key");
        var (maxBatch, maxQueue) = (args.Int("max-batch-size", min: 1)!.Value, args.Int("max-queue", min: 0)!.Value);
        var (continuous, prefixMb) = (ServeOptions.ParseBatching(args.String("batching")), args.Int("prefix-cache-mb", min: 0)!.Value);
        var device = DeviceArgument.Read(args);
        args.EnsureAllUsed();
        return ServeHost.Run(new ServeOptions(dir, device, host, port, apiKey, maxBatch, maxQueue) { ContinuousBatching = continuous, PrefixCacheMb = prefixMb }, Console.Error);
    }
}
