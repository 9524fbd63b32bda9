using Peft.Onnx.Core;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Server;

/// <summary>How `peft-onnx serve` runs.</summary>
/// <param name="OnnxDir">The folder written by peft-onnx export.</param>
/// <param name="Host">The address to listen on (loopback by default; another one warns when there is no key).</param>
/// <param name="Port">0 picks a free port (the address is printed once listening).</param>
/// <param name="ApiKey">When set, every endpoint but /health needs "Authorization: Bearer KEY".</param>
/// <param name="MaxBatchSize">Rows generated together at most.</param>
/// <param name="MaxQueue">Requests waiting at most; one more gets 429.</param>
/// <param name="MaxBodyBytes">Largest request body (413 beyond).</param>
/// <param name="MaxTokensLimit">Largest max_tokens a request may ask for.</param>
public sealed record ServeOptions(
    string OnnxDir,
    DeviceOptions Device,
    string Host = "127.0.0.1",
    int Port = 8000,
    string? ApiKey = null,
    int MaxBatchSize = 32,
    int MaxQueue = 256,
    long MaxBodyBytes = 1 << 20,
    int MaxTokensLimit = 4096)
{
    /// <summary>Seconds a stopping server waits for the requests in flight.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// False runs one generator per request even where a continuous batch could hold the export (the mode
    /// throughput comparisons measure against).
    /// </summary>
    public bool ContinuousBatching { get; init; } = true;

    /// <summary>
    /// Megabytes of prefilled prompts a continuous batch keeps (least recently used out), so a request whose prompt and
    /// adapter equal an earlier one's skips its prefill; 0 disables.
    /// </summary>
    public int PrefixCacheMb { get; init; } = 64;

    /// <summary>The scheduling modes `serve --batching` accepts, the default first.</summary>
    public static readonly IReadOnlyList<string> BatchingModes = ["continuous", "per-request"];

    /// <summary>
    /// <see cref="ContinuousBatching"/> from the text of `--batching`: "continuous" (rows join a running batch) or
    /// "per-request" (one generator per request).
    /// </summary>
    public static bool ParseBatching(string? mode) => mode switch
    {
        null or "continuous" => true,
        "per-request" => false,
        _ => throw new PeftOnnxException($"serve: --batching '{mode}' is not a mode (expected {string.Join(" or ", BatchingModes)})"),
    };
}
