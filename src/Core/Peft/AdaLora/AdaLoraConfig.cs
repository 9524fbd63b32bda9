using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's AdaLoraConfig (a LoraConfig with the SVD form): each target's weight gets
/// lora_B @ (lora_A * lora_E) * lora_alpha / (ranknum + 1e-5) added, lora_A [init_r, in], lora_E [init_r, 1],
/// lora_B [out, init_r]; ranknum = init_r (a buffer, not saved). The config's r is LoraConfig's unused default.
/// With labels, the loss gets orth_reg_weight x the mean over every lora_A / lora_B of ||P P^T - I||_F.
/// The rank schedule keys (target_r, tinit, tfinal, deltaT, beta1, beta2, total_step) only drive
/// update_and_allocate during training, which is not implemented.
/// </summary>
public sealed record AdaLoraConfig : InjectedAdapterConfig
{
    public const string Type = "ADALORA";

    public const string A = "lora_A";
    public const string B = "lora_B";
    public const string E = "lora_E";

    /// <summary>PEFT adds 1e-5 to ranknum in the scale's denominator.</summary>
    public const double RankEpsilon = 1e-5;

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    public AdaLoraConfig() => PeftType = Type;

    protected override string MethodPeftType => Type;

    /// <summary>LoraConfig's r, unused by AdaLoRA (init_r sets the rank).</summary>
    public int R { get; init; } = 8;
    public int InitR { get; init; } = 12;
    public int TargetR { get; init; } = 8;
    public double LoraAlpha { get; init; } = 8;
    [JsonConverter(typeof(PythonFloatConverter))] public double LoraDropout { get; init; }
    public string Bias { get; init; } = "none";
    public JsonElement? InitLoraWeights { get; init; }
    public JsonElement? LayersToTransform { get; init; }
    public JsonElement? LayersPattern { get; init; }
    public JsonElement? RankPattern { get; init; }
    public JsonElement? AlphaPattern { get; init; } = EmptyObject;
    public JsonElement? LoftqConfig { get; init; } = EmptyObject;
    public JsonElement? MegatronConfig { get; init; }
    public string? MegatronCore { get; init; } = "megatron.core";
    public JsonElement? LayerReplication { get; init; }
    public bool? UseDora { get; init; }
    public bool? UseRslora { get; init; }
    [JsonConverter(typeof(PythonFloatConverter))] public double OrthRegWeight { get; init; } = 0.5;
    public int Tinit { get; init; }
    public int Tfinal { get; init; }
    [JsonPropertyName("deltaT")] public int DeltaT { get; init; } = 1;
    [JsonConverter(typeof(PythonFloatConverter))] public double Beta1 { get; init; } = 0.85;
    [JsonConverter(typeof(PythonFloatConverter))] public double Beta2 { get; init; } = 0.85;
    public int? TotalStep { get; init; }

    /// <summary>PEFT's AdaLoRA defaults: LoRA's, except T5 / mT5, where every attention and feed-forward linear is adapted.</summary>
    private static readonly FrozenDictionary<string, IReadOnlyList<string>> AdaLoraDefaults =
        DefaultTargetModules.Lora.ToDictionary(kv => kv.Key, kv => kv.Key is "t5" or "mt5" ? (IReadOnlyList<string>)["q", "k", "v", "o", "wi", "wo"] : kv.Value)
            .ToFrozenDictionary();

    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => AdaLoraDefaults;

    /// <summary>
    /// The scale alpha / (init_r + 1e-5) as PEFT computes it per forward: float32 ranknum plus 1e-5 in float32,
    /// then the division by the Python float alpha in float32.
    /// </summary>
    [JsonIgnore] public double Scale => (float)((float)LoraAlpha / ((float)InitR + (float)RankEpsilon));

    protected override TargetMatch Match(LinearSpec linear, ModelConfig model) => new(linear, InitR, LoraAlpha, Scale, IsFeedforward: false);

    protected override long AddedParameters(TargetMatch match) => ExpectedTensors(match).Sum(t => t.Shape.Aggregate(1L, (p, d) => p * d));

    /// <summary>ranknum: a one-element nn.Parameter with requires_grad false per target, counted in all params.</summary>
    protected override long FrozenAddedParameters(TargetMatch match) => 1;

    /// <summary>lora_A, lora_E, lora_B of one target (saved without a ".weight" leaf).</summary>
    public IReadOnlyList<ExpectedTensor> ExpectedTensors(TargetMatch target)
    {
        long r = target.Rank, inF = target.Linear.InFeatures, outF = target.Linear.OutFeatures;
        var why = $"init_r = {r} on '{target.Path}' (in {inF}, out {outF})";
        return
        [
            new(AdapterFormat.ModuleKey(target.Path, A), [r, inF], ExpectedTensor.BaseNeeds, $"AdaLoRA A, {why}"),
            new(AdapterFormat.ModuleKey(target.Path, B), [outF, r], ExpectedTensor.BaseNeeds, $"AdaLoRA B, {why}"),
            new(AdapterFormat.ModuleKey(target.Path, E), [r, 1], ExpectedTensor.BaseNeeds, $"AdaLoRA singular values E, {why}"),
        ];
    }

    public override void Validate()
    {
        base.Validate();
        Require(InitR > 0, "init_r", InitR, "a positive integer");
        Require(double.IsFinite(LoraAlpha) && LoraAlpha > 0 && LoraAlpha <= LoraConfig.MaxAlpha, "lora_alpha", LoraAlpha, $"a positive number at most {Show(LoraConfig.MaxAlpha)} (PEFT replaces 0 by r)");
        Require(LoraDropout >= 0 && LoraDropout < 1, "lora_dropout", LoraDropout, "a probability in [0, 1)");
        Require(double.IsFinite(OrthRegWeight) && OrthRegWeight >= 0, "orth_reg_weight", OrthRegWeight, "a finite number >= 0");
        Require(double.IsFinite(Beta1), "beta1", Beta1, "a finite number");
        Require(double.IsFinite(Beta2), "beta2", Beta2, "a finite number");
        if (Bias != "none")
            throw new PeftOnnxException($"{SourcePath}: bias = \"{Bias}\" is not supported for ADALORA adapters (expected \"none\": trained biases are not implemented)");
        if (UseDora == true) throw Refused("use_dora", "true", "false");
        RefuseSet("rank_pattern", RankPattern, "the ranks update_and_allocate pruned to");
        RefuseSet("alpha_pattern", AlphaPattern, "per-module alpha");
        RefuseSet("layers_to_transform", LayersToTransform, "the layer filter");
        RefuseSet("layers_pattern", LayersPattern, "the layer filter");
        RefuseSet("layer_replication", LayerReplication, "layer replication");
        RefuseSet("megatron_config", MegatronConfig, "Megatron layers");
    }

    private PeftOnnxException Refused(string key, string value, string expected) =>
        new($"{SourcePath}: {key} = {value} is not supported for ADALORA adapters (expected {expected})");

    private void RefuseSet(string key, JsonElement? value, string what)
    {
        if (value is not { } v || v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind is JsonValueKind.Array or JsonValueKind.Object && (v.ValueKind == JsonValueKind.Array ? v.GetArrayLength() : v.EnumerateObject().Count()) == 0) return;
        throw Refused(key, v.GetRawText(), $"null or empty: {what} is not implemented");
    }
}
