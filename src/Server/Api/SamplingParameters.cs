namespace Peft.Onnx.Server.Api;

/// <summary>What a completion or chat request asks of the generation (null: the folder's generation_config.json).</summary>
/// <param name="IgnoreEos">vLLM's extension: generate max_tokens tokens, the end-of-sequence token included (benchmarks).</param>
public sealed record SamplingParameters(
    string Model, int? MaxTokens, double? Temperature, double? TopP, int? TopK, ulong? Seed, IReadOnlyList<string> Stop, bool Stream, bool IncludeUsage, bool IgnoreEos = false);
