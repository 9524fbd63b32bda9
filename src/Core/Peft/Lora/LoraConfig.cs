using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's LoraConfig: W' = W + scaling * B @ A on each target, with scaling = lora_alpha / r (lora_alpha / sqrt(r)
/// with use_rslora). The keys of PEFT 0.7.1 are properties; the keys later versions (0.8 to 0.20) added live in
/// <see cref="AdapterConfig.Extra"/>, so a file is written back exactly as read, with typed views of those this
/// project implements (use_dora, lora_bias, exclude_modules); the others are refused when they would change the
/// computation (<see cref="LoraNewerKeys"/>).
/// </summary>
public sealed record LoraConfig : InjectedAdapterConfig
{
    public const string Type = "LORA";

    /// <summary>PEFT's COMMON_LAYERS_PATTERN: module-list names tried when layers_pattern is null.</summary>
    public static readonly IReadOnlyList<string> CommonLayersPattern = Array.AsReadOnly(["layers", "h", "block", "blocks", "layer"]);

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    /// <summary>
    /// Largest lora_alpha (and alpha_pattern value) accepted: the scale multiplies float32 weights, and an alpha
    /// beyond this turns them into infinities (1e308 gives NaN logits) long before it means anything.
    /// </summary>
    public const double MaxAlpha = 1e6;

    public LoraConfig() => PeftType = Type;

    public int R { get; init; } = 8;

    /// <summary>An int in PEFT's signature, but floats work there too.</summary>
    public double LoraAlpha { get; init; } = 8;

    [JsonConverter(typeof(PythonFloatConverter))] public double LoraDropout { get; init; }

    /// <summary>"none", "all" (every base parameter named *bias* trains) or "lora_only".</summary>
    public string Bias { get; init; } = "none";

    public InitLoraWeights InitLoraWeights { get; init; } = InitLoraWeights.Default;

    /// <summary>Layer indices to adapt (an int or a list); null adapts every layer.</summary>
    public OneOrMany<int>? LayersToTransform { get; init; }

    /// <summary>Name of the module list holding the layers (a string or a list); null tries <see cref="CommonLayersPattern"/>.</summary>
    public OneOrMany<string>? LayersPattern { get; init; }

    /// <summary>Per-module r: the first key k (rank keys, then alpha keys) with re.match(".*\.k$", name) wins.</summary>
    public Dictionary<string, int>? RankPattern { get; init; } = [];

    /// <summary>Per-module lora_alpha, looked up with the same key as <see cref="RankPattern"/>.</summary>
    public Dictionary<string, double>? AlphaPattern { get; init; } = [];

    /// <summary>Used by PEFT only on Megatron's parallel linear layers, which no family here has: no effect on these models.</summary>
    public JsonElement? MegatronConfig { get; init; }
    public string? MegatronCore { get; init; } = "megatron.core";
    public JsonElement? LoftqConfig { get; init; } = EmptyObject;

    /// <summary>Rank-stabilised scaling (PEFT 0.8+); absent from 0.7.1 files, so only written when set.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public bool? UseRslora { get; init; }

    /// <summary>use_dora (PEFT 0.9+): weight-decomposed LoRA, a trained per-output magnitude over the normalised adapted weight.</summary>
    [JsonIgnore] public bool UsesDora
    {
        get => LoraNewerKeys.Flag(Extra, LoraNewerKeys.UseDora);
        init => Extra = LoraNewerKeys.With(Extra, LoraNewerKeys.UseDora, JsonSerializer.SerializeToElement(value));
    }

    /// <summary>lora_bias (PEFT 0.14+): lora_B carries a bias, scaled with the branch and merged into the base bias.</summary>
    [JsonIgnore] public bool HasLoraBias
    {
        get => LoraNewerKeys.Flag(Extra, LoraNewerKeys.LoraBias);
        init => Extra = LoraNewerKeys.With(Extra, LoraNewerKeys.LoraBias, JsonSerializer.SerializeToElement(value));
    }

    /// <summary>exclude_modules (PEFT 0.14+): modules never adapted, a regex (full match) or a list of names or dotted suffixes.</summary>
    [JsonIgnore] public TargetModules? ExcludedModules
    {
        get => LoraNewerKeys.Modules(Extra, LoraNewerKeys.ExcludeModules, SourcePath);
        init => Extra = LoraNewerKeys.With(Extra, LoraNewerKeys.ExcludeModules, JsonSerializer.SerializeToElement(value));
    }

    protected override string MethodPeftType => Type;
    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => DefaultTargetModules.Lora;

    /// <summary>
    /// check_target_module_exists with the layer filter: for a list of targets and layers_to_transform set, the
    /// first layers pattern found in the name (regex ".*.{pattern}\.(\d+)\.*") gives the layer index that must be
    /// listed; a name with no layer index is not adapted. A regex target ignores the filter.
    /// </summary>
    protected override bool IsTarget(TargetModules targets, string moduleName)
    {
        // check_target_module_exists tests exclude_modules first: an excluded module is never adapted
        if (ExcludedModules is { } excluded && excluded.Matches(moduleName)) return false;
        if (!targets.Matches(moduleName)) return false;
        if (targets.IsPattern || LayersToTransform is null) return true;
        foreach (var pattern in LayersPattern?.Values ?? CommonLayersPattern)
        {
            var match = PythonRegex.Match($@".*.{pattern}\.(\d+)\.*").Match(moduleName);
            if (match.Success)
                return int.TryParse(match.Groups[1].Value, out var layer) && LayersToTransform.Contains(layer);
        }
        return false;
    }

    protected override string LayerFilterDescription =>
        (ExcludedModules is null ? "" : $" without exclude_modules {ExcludedModules}")
        + (LayersToTransform is null ? "" : $" with layers_to_transform {LayersToTransform}" + (LayersPattern is null ? "" : $" and layers_pattern {LayersPattern}"));

    /// <summary>LoraModel._create_and_replace: r and alpha from the first matching pattern key.</summary>
    protected override TargetMatch Match(LinearSpec linear, ModelConfig model)
    {
        var key = PatternKeyFor(linear.Path);
        var rank = RankPattern is not null && RankPattern.TryGetValue(key, out var r) ? r : R;
        var alpha = AlphaPattern is not null && AlphaPattern.TryGetValue(key, out var a) ? a : LoraAlpha;
        var scaling = UseRslora == true ? alpha / Math.Sqrt(rank) : alpha / rank;
        return new TargetMatch(linear, rank, alpha, scaling, IsFeedforward: false);
    }

    /// <summary>A [r, in] and B [out, r], plus DoRA's magnitude [out] and lora_B's bias [out] when set.</summary>
    protected override long AddedParameters(TargetMatch match) =>
        match.Rank * (match.Linear.InFeatures + match.Linear.OutFeatures)
        + (UsesDora ? match.Linear.OutFeatures : 0) + (HasLoraBias ? match.Linear.OutFeatures : 0);

    /// <summary>
    /// PEFT chains rank_pattern's keys then alpha_pattern's (file order) and takes the first with
    /// re.match(f".*\.{key}$", name), else the name itself; both r and alpha are then looked up by that one key.
    /// </summary>
    public string PatternKeyFor(string moduleName) =>
        (RankPattern?.Keys ?? Enumerable.Empty<string>()).Concat(AlphaPattern?.Keys ?? Enumerable.Empty<string>())
            .FirstOrDefault(key => PythonRegex.Match($@".*\.{key}$").IsMatch(moduleName)) ?? moduleName;

    /// <summary>
    /// bias = "all": PEFT unfreezes every parameter whose name contains "bias" (T5's relative_attention_bias too).
    /// bias = "lora_only" unfreezes nothing in PEFT 0.7.1: its check hasattr(lora_layer, "bias") is false since the
    /// 0.7 base_layer refactor (the attribute came back in PEFT 0.10, huggingface/peft#1530).
    /// </summary>
    protected override long TrainableBaseParameters(Architecture arch) =>
        Bias == "all" ? arch.Parameters.Where(p => p.Name.Contains("bias", StringComparison.Ordinal)).Sum(p => p.ElementCount) : 0;

    public override void Validate()
    {
        base.Validate();
        Require(R > 0, "r", R, "a positive integer");
        Require(LoraDropout >= 0 && LoraDropout < 1, "lora_dropout", LoraDropout, "a probability in [0, 1)");
        Require(Bias is "none" or "all" or "lora_only", "bias", Bias, "\"none\", \"all\" or \"lora_only\"");
        Require(double.IsFinite(LoraAlpha), "lora_alpha", LoraAlpha, "a finite number");
        Require(Math.Abs(LoraAlpha) <= MaxAlpha, "lora_alpha", LoraAlpha, $"a number of magnitude at most {Show(MaxAlpha)}");
        Require(InitLoraWeights is { IsKnown: true }, "init_lora_weights", InitLoraWeights?.Method, "true, false, \"gaussian\" or \"loftq\"");
        if (InitLoraWeights!.Method == "loftq")
            Require(LoftqConfig is { ValueKind: JsonValueKind.Object } l && l.EnumerateObject().Any(), "loftq_config", LoftqConfig?.GetRawText(), "a non-empty object when init_lora_weights is \"loftq\"");
        LoraNewerKeys.Validate(this);
        Require(!(UsesDora && HasLoraBias), "lora_bias", HasLoraBias, "false when use_dora is true (PEFT does not support lora_bias with DoRA)");
        if (ExcludedModules?.Pattern is { } excludePattern && PythonRegex.Error(excludePattern) is { } excludeError)
            throw new PeftOnnxException($"{SourcePath}: exclude_modules: {excludeError}");
        foreach (var (key, rank) in RankPattern ?? [])
            Require(rank > 0, $"rank_pattern[\"{key}\"]", rank, "a positive integer");
        foreach (var (key, alpha) in AlphaPattern ?? [])
        {
            Require(double.IsFinite(alpha), $"alpha_pattern[\"{key}\"]", alpha, "a finite number");
            Require(Math.Abs(alpha) <= MaxAlpha, $"alpha_pattern[\"{key}\"]", alpha, $"a number of magnitude at most {Show(MaxAlpha)}");
        }
        if (TargetModules is { Pattern: { } targetPattern } && !targetPattern.Equals(AllLinear, StringComparison.OrdinalIgnoreCase))
        {
            if (LayersToTransform is not null)
                throw new PeftOnnxException($"{SourcePath}: layers_to_transform cannot be used when target_modules is a regular expression (a string)");
            if (LayersPattern is not null)
                throw new PeftOnnxException($"{SourcePath}: layers_pattern cannot be used when target_modules is a regular expression (a string)");
        }
        foreach (var pattern in LayersPattern?.Values ?? [])
            CheckRegex("layers_pattern", pattern);
        foreach (var key in (RankPattern?.Keys ?? Enumerable.Empty<string>()).Concat(AlphaPattern?.Keys ?? Enumerable.Empty<string>()))
            CheckRegex("rank_pattern/alpha_pattern key", key);
    }

    private void CheckRegex(string key, string pattern)
    {
        if (PythonRegex.Error(pattern) is { } error) throw new PeftOnnxException($"{SourcePath}: {key}: {error}");
    }
}
