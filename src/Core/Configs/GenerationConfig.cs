using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Onnx.Core.Configs;

/// <summary>generation_config.json: the defaults generate() uses (keys 1:1, transformers' defaults).</summary>
public sealed record GenerationConfig
{
    public const string FileName = "generation_config.json";

    public int? MaxLength { get; init; } = 20;
    public int? MaxNewTokens { get; init; }
    public bool DoSample { get; init; }
    public int NumBeams { get; init; } = 1;
    public double Temperature { get; init; } = 1.0;
    public int TopK { get; init; } = 50;
    public double TopP { get; init; } = 1.0;
    public double RepetitionPenalty { get; init; } = 1.0;
    public int? PadTokenId { get; init; }
    [JsonConverter(typeof(TokenIdsConverter))] public int[]? BosTokenId { get; init; }
    [JsonConverter(typeof(TokenIdsConverter))] public int[]? EosTokenId { get; init; }
    public int? DecoderStartTokenId { get; init; }
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    public static GenerationConfig? TryLoad(string dir)
    {
        try { return TryLoadChecked(dir); }
        catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }
    }

    private static GenerationConfig? TryLoadChecked(string dir)
    {
        var path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) return null;
        var config = ConfigJson.Deserialize<GenerationConfig>(File.ReadAllBytes(path), path);
        if (config.NumBeams < 1) throw new PeftOnnxException($"{path}: num_beams = {config.NumBeams} is out of range (expected >= 1)");
        if (config.Temperature <= 0 || double.IsNaN(config.Temperature)) throw new PeftOnnxException($"{path}: temperature = {config.Temperature} is out of range (expected > 0)");
        if (config.TopP is <= 0 or > 1 || double.IsNaN(config.TopP)) throw new PeftOnnxException($"{path}: top_p = {config.TopP} is out of range (expected 0 < top_p <= 1)");
        if (config.TopK < 0) throw new PeftOnnxException($"{path}: top_k = {config.TopK} is out of range (expected >= 0)");
        // RepetitionPenaltyLogitsProcessor refuses a penalty that is not strictly positive.
        if (!(config.RepetitionPenalty > 0) || !double.IsFinite(config.RepetitionPenalty))
            throw new PeftOnnxException($"{path}: repetition_penalty = {config.RepetitionPenalty.ToString(System.Globalization.CultureInfo.InvariantCulture)} is out of range (expected a positive number)");
        if (config.MaxNewTokens < 0) throw new PeftOnnxException($"{path}: max_new_tokens = {config.MaxNewTokens} is out of range (expected >= 0)");
        return config;
    }

    /// <summary>Generation defaults derived from config.json when no generation_config.json exists, as transformers does.</summary>
    public static GenerationConfig FromModelConfig(ModelConfig c) => new()
    {
        PadTokenId = c.PadTokenId,
        BosTokenId = c.BosTokenId,
        EosTokenId = c.EosTokenId,
        DecoderStartTokenId = c.IsEncoderDecoder ? c.DecoderStartId : c.DecoderStartTokenId,
    };
}
