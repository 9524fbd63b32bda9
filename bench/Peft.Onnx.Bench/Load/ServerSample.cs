using System.Text.Json.Serialization;

namespace Peft.Onnx.Bench.Load;

/// <summary>
/// One reading of a running server's /metrics during `load --url`: its resident memory and the tokens it had generated,
/// <see cref="Seconds"/> into the run.
/// </summary>
public sealed record ServerSample(
    [property: JsonPropertyName("t_seconds")] double Seconds,
    [property: JsonPropertyName("rss_bytes")] long RssBytes,
    [property: JsonPropertyName("server_tokens")] long ServerTokens);
