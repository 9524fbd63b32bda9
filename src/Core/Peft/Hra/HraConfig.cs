using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's HRAConfig (0.13.2 keys; newer keys are kept): each target's weight is multiplied on the right by r
/// Householder reflections, y = x @ (W @ H_1 ... H_r)^T + b, H_i = I - 2 u_i u_i^T / ||u_i||^2 with u_i the columns
/// of hra_u [in, r]; with apply_GS the columns are first made orthonormal (Gram-Schmidt) and the product is
/// I - 2 U U^T. <see cref="HraReflections"/> spells out the arithmetic.
/// </summary>
public sealed record HraConfig : InjectedAdapterConfig
{
    public const string Type = "HRA";

    /// <summary>The saved module attribute (a ParameterDict entry: no ".weight" leaf).</summary>
    public const string Vectors = "hra_u";

    /// <summary>Keys newer PEFT writes that would change which modules are adapted; not implemented, so refused when set.</summary>
    private static readonly string[] RefusedWhenSet = ["exclude_modules"];

    public HraConfig() => PeftType = Type;

    /// <summary>Reflections per layer.</summary>
    public int R { get; init; } = 8;

    [JsonPropertyName("apply_GS")] public bool ApplyGs { get; init; }

    public bool InitWeights { get; init; } = true;

    /// <summary>Which biases train besides the adapter; only "none" is implemented.</summary>
    public string Bias { get; init; } = "none";

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersToTransform { get; init; }

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersPattern { get; init; }

    /// <summary>HRA configs have no fan_in_fan_out key: the flag stays internal (always false, Conv1D is refused).</summary>
    [JsonIgnore] public override bool FanInFanOut { get => false; init { } }

    protected override string MethodPeftType => Type;

    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => DefaultTargetModules.Lora;

    protected override TargetMatch Match(LinearSpec linear, ModelConfig model)
    {
        if (linear.IsConv1D)
            throw new PeftOnnxException($"{SourcePath}: target_modules selects '{linear.Path}', a transformers Conv1D layer, which PEFT's HRA does not support (only nn.Linear layers)");
        return new TargetMatch(linear, R, 0, 1, IsFeedforward: false);
    }

    /// <summary>hra_u [in, r] of one adapted module.</summary>
    public ExpectedTensor VectorsTensor(TargetMatch target) =>
        new(AdapterFormat.ModuleKey(target.Path, Vectors), [target.Linear.InFeatures, target.Rank], ExpectedTensor.BaseNeeds,
            $"HRA reflections, r = {target.Rank} on '{target.Path}' (in {target.Linear.InFeatures})");

    protected override long AddedParameters(TargetMatch match) => match.Linear.InFeatures * match.Rank;

    public override InjectedAdapterConfig PreparedFor(Architecture arch) => this with { TargetModules = TargetModulesFor(arch) };

    public override void Validate()
    {
        base.Validate();
        Require(R > 0, "r", R, "a positive integer");
        Require(Bias == "none", "bias", Bias, "\"none\" (training the base biases with HRA is not implemented)");
        RefuseSet("layers_to_transform", LayersToTransform);
        RefuseSet("layers_pattern", LayersPattern);
        foreach (var key in RefusedWhenSet)
            if (Extra is not null && Extra.TryGetValue(key, out var value)) RefuseSet(key, value);
    }

    private void RefuseSet(string key, JsonElement? value)
    {
        if (value is not { } v || v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0) return;
        throw new PeftOnnxException($"{SourcePath}: {key} = {v.GetRawText()} is not supported for HRA adapters (expected null: the HRA layer filter is not implemented)");
    }
}
