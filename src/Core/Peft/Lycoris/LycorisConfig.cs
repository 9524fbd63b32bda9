using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// The keys PEFT's LyCORIS methods (LoHa, LoKr) share: r and alpha with per-module patterns, rank and module
/// dropout (training only), and the layer filter. Their delta is added to nn.Linear weights only: PEFT refuses
/// transformers' Conv1D (GPT-2), and so does this record. Scale alpha / r.
/// </summary>
public abstract record LycorisConfig : InjectedAdapterConfig
{
    /// <summary>Keys current PEFT writes that would change which modules are adapted; not implemented, so refused when set.</summary>
    private static readonly string[] RefusedWhenSet = ["exclude_modules"];

    public int R { get; init; } = 8;

    /// <summary>An int in PEFT's signature; floats work there too.</summary>
    public double Alpha { get; init; } = 8;

    /// <summary>Drops whole ranks while training; the trainer refuses a positive value.</summary>
    [JsonConverter(typeof(PythonFloatConverter))] public double RankDropout { get; init; }

    /// <summary>Skips the whole adapter of a module while training; the trainer refuses a positive value.</summary>
    [JsonConverter(typeof(PythonFloatConverter))] public double ModuleDropout { get; init; }

    /// <summary>Only changes Conv2d layers, which no supported family has.</summary>
    [JsonPropertyName("use_effective_conv2d")] public bool UseEffectiveConv2d { get; init; }

    public bool InitWeights { get; init; } = true;

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersToTransform { get; init; }

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersPattern { get; init; }

    /// <summary>Per-module r: the first key k (rank keys, then alpha keys) with re.match("(.*\.)?k$", name) wins.</summary>
    public Dictionary<string, int>? RankPattern { get; init; } = [];

    /// <summary>Per-module alpha, looked up with the same key as <see cref="RankPattern"/>.</summary>
    public Dictionary<string, double>? AlphaPattern { get; init; } = [];

    /// <summary>LyCORIS configs have no fan_in_fan_out key: the flag stays internal (always false, Conv1D is refused).</summary>
    [JsonIgnore] public override bool FanInFanOut { get; init; }

    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => DefaultTargetModules.Lora;

    /// <summary>The method's name in messages ("LoHa", "LoKr").</summary>
    [JsonIgnore] protected abstract string MethodName { get; }

    /// <summary>LycorisTuner._create_and_replace: r and alpha from the first matching pattern key, scale alpha / r.</summary>
    protected override TargetMatch Match(LinearSpec linear, ModelConfig model)
    {
        if (linear.IsConv1D)
            throw new PeftOnnxException($"{SourcePath}: target_modules selects '{linear.Path}', a transformers Conv1D layer, which PEFT's {MethodName} does not support (only nn.Linear layers)");
        var key = PatternKeyFor(linear.Path);
        var rank = RankPattern is not null && RankPattern.TryGetValue(key, out var r) ? r : R;
        var alpha = AlphaPattern is not null && AlphaPattern.TryGetValue(key, out var a) ? a : Alpha;
        if (rank <= 0) throw Invalid($"rank_pattern[\"{key}\"]", rank, "a positive integer");
        return new TargetMatch(linear, rank, alpha, alpha / rank, IsFeedforward: false);
    }

    /// <summary>The pattern key of a module: the first of rank_pattern's then alpha_pattern's keys that matches its full name, else the name.</summary>
    public string PatternKeyFor(string moduleName) =>
        (RankPattern?.Keys ?? Enumerable.Empty<string>()).Concat(AlphaPattern?.Keys ?? Enumerable.Empty<string>())
            .FirstOrDefault(key => PythonRegex.Match($@"(.*\.)?{key}$").IsMatch(moduleName)) ?? moduleName;

    /// <summary>The tensors the method saves for one adapted module, with the shapes the module implies.</summary>
    public abstract IReadOnlyList<ExpectedTensor> ExpectedTensors(TargetMatch target);

    protected override long AddedParameters(TargetMatch match) => ExpectedTensors(match).Sum(t => t.Shape.Aggregate(1L, (p, d) => p * d));

    public override void Validate()
    {
        base.Validate();
        Require(R > 0, "r", R, "a positive integer");
        Require(double.IsFinite(Alpha) && Math.Abs(Alpha) <= LoraConfig.MaxAlpha, "alpha", Alpha, $"a finite number of magnitude at most {Show(LoraConfig.MaxAlpha)}");
        Require(RankDropout >= 0 && RankDropout < 1, "rank_dropout", RankDropout, "a probability in [0, 1)");
        Require(ModuleDropout >= 0 && ModuleDropout < 1, "module_dropout", ModuleDropout, "a probability in [0, 1)");
        foreach (var (key, rank) in RankPattern ?? [])
            Require(rank > 0, $"rank_pattern[\"{key}\"]", rank, "a positive integer");
        foreach (var (key, alpha) in AlphaPattern ?? [])
            Require(double.IsFinite(alpha) && Math.Abs(alpha) <= LoraConfig.MaxAlpha, $"alpha_pattern[\"{key}\"]", alpha, $"a finite number of magnitude at most {Show(LoraConfig.MaxAlpha)}");
        foreach (var key in (RankPattern?.Keys ?? Enumerable.Empty<string>()).Concat(AlphaPattern?.Keys ?? Enumerable.Empty<string>()))
            if (PythonRegex.Error(key) is { } error) throw new PeftOnnxException($"{SourcePath}: rank_pattern/alpha_pattern key: {error}");
        RefuseSet("layers_to_transform", LayersToTransform);
        RefuseSet("layers_pattern", LayersPattern);
        foreach (var key in RefusedWhenSet)
            if (Extra is not null && Extra.TryGetValue(key, out var value)) RefuseSet(key, value);
    }

    /// <summary>A key whose semantics this project does not implement for the method: refused unless null (or empty).</summary>
    private void RefuseSet(string key, JsonElement? value)
    {
        if (value is not { } v || v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0) return;
        throw new PeftOnnxException($"{SourcePath}: {key} = {v.GetRawText()} is not supported for {PeftType} adapters (expected null: the {MethodName} layer filter is not implemented)");
    }
}
