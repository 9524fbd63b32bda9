using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime;

/// <summary>
/// How to generate, with Hugging Face generate()'s meaning. A property left null takes the folder's
/// generation_config.json value (or transformers' default): greedy unless do_sample, top_k 50, top_p 1,
/// temperature 1, repetition_penalty 1, stop at eos_token_id, pad finished rows with pad_token_id.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>New tokens per row at most (null: generation_config.json's max_new_tokens, else its max_length, 20 by default, bounds prompt + new tokens as in transformers).</summary>
    public int? MaxNewTokens { get; init; }

    /// <summary>false: greedy (arg-max); true: sample from the temperature / top-k / top-p filtered distribution.</summary>
    public bool? DoSample { get; init; }

    public double? Temperature { get; init; }

    /// <summary>Keep the k most likely tokens when sampling (0 = off).</summary>
    public int? TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p when sampling (1 = off).</summary>
    public double? TopP { get; init; }

    /// <summary>Seed of the sampler; the same seed, prompts and options give the same tokens (null: a random seed).</summary>
    public ulong? Seed { get; init; }

    /// <summary>CTRL's penalty on every token already in the sequence (1 = off).</summary>
    public double? RepetitionPenalty { get; init; }

    /// <summary>A row finishes after producing one of these (null: eos_token_id of generation_config.json / config.json).</summary>
    public IReadOnlyList<int>? StopTokenIds { get; init; }

    /// <summary>Fills left padding and the rows that finished early (null: pad_token_id, else the first stop token).</summary>
    public int? PadTokenId { get; init; }

    /// <summary>Greedy decoding of at most <paramref name="maxNewTokens"/> tokens.</summary>
    /// <summary>
    /// Options from `generate`'s settings: greedy and sampling settings exclude each other; without either the folder's
    /// generation_config.json decides. <paramref name="seed"/> is the text given (a non-negative integer).
    /// </summary>
    public static GenerationOptions FromSettings(int? maxNewTokens, bool greedy, double? temperature, int? topK, double? topP, string? seed, double? repetitionPenalty)
    {
        bool sampling = temperature != null || topK != null || topP != null || seed != null;
        if (greedy && sampling) throw new PeftOnnxException("generate: --greedy cannot be combined with --temperature, --top-k, --top-p or --seed");
        ulong? seedValue = null;
        if (seed != null)
        {
            if (!ulong.TryParse(seed, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var s))
                throw new PeftOnnxException($"generate: --seed '{seed}' must be a non-negative integer");
            seedValue = s;
        }
        return new GenerationOptions
        {
            MaxNewTokens = maxNewTokens,
            DoSample = greedy ? false : sampling ? true : null,
            Temperature = temperature,
            TopK = topK,
            TopP = topP,
            Seed = seedValue,
            RepetitionPenalty = repetitionPenalty,
        };
    }

    public static GenerationOptions Greedy(int? maxNewTokens = null) => new() { MaxNewTokens = maxNewTokens, DoSample = false };

    /// <summary>Sampling with the given filters (null: the folder's defaults).</summary>
    public static GenerationOptions Sampling(ulong? seed = null, double? temperature = null, int? topK = null, double? topP = null, int? maxNewTokens = null) =>
        new() { DoSample = true, Seed = seed, Temperature = temperature, TopK = topK, TopP = topP, MaxNewTokens = maxNewTokens };
}

/// <summary>Options with every default filled in and checked.</summary>
/// <param name="MaxNewTokens">The request's or generation_config.json's max_new_tokens; null: <paramref name="MaxLength"/> bounds the sequence.</param>
/// <param name="MaxLength">generation_config.json's max_length (transformers' default 20), used when no max_new_tokens is set.</param>
internal sealed record ResolvedOptions(int? MaxNewTokens, int MaxLength, bool DoSample, double Temperature, int TopK, double TopP, ulong Seed,
    double RepetitionPenalty, int[] StopTokenIds, int PadTokenId)
{
    public static ResolvedOptions Resolve(GenerationOptions o, Core.Configs.GenerationConfig defaults)
    {
        int? maxNew = o.MaxNewTokens ?? defaults.MaxNewTokens;
        int maxLength = defaults.MaxLength ?? 20;
        if (maxNew < 0) throw new PeftOnnxException($"max_new_tokens = {maxNew} is out of range (expected >= 0)");
        double temperature = o.Temperature ?? defaults.Temperature;
        if (!(temperature > 0) || !double.IsFinite(temperature)) throw new PeftOnnxException($"temperature = {temperature} is out of range (expected > 0)");
        int topK = o.TopK ?? defaults.TopK;
        if (topK < 0) throw new PeftOnnxException($"top_k = {topK} is out of range (expected >= 0; 0 = off)");
        double topP = o.TopP ?? defaults.TopP;
        if (!(topP > 0 && topP <= 1)) throw new PeftOnnxException($"top_p = {topP} is out of range (expected 0 < top_p <= 1)");
        double penalty = o.RepetitionPenalty ?? defaults.RepetitionPenalty;
        if (!(penalty > 0) || !double.IsFinite(penalty)) throw new PeftOnnxException($"repetition_penalty = {penalty} is out of range (expected > 0)");
        var stop = (o.StopTokenIds ?? defaults.EosTokenId ?? []).Distinct().ToArray();
        int pad = o.PadTokenId ?? defaults.PadTokenId ?? (stop.Length > 0 ? stop[0] : 0);
        ulong seed = o.Seed ?? (ulong)Random.Shared.NextInt64();
        return new ResolvedOptions(maxNew, maxLength, o.DoSample ?? defaults.DoSample, temperature, topK, topP, seed, penalty, stop, pad);
    }
}
