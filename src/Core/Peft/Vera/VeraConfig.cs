using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's VeraConfig: each target's weight gets diag(lambda_b) @ vera_B[:out] @ diag(lambda_d) @ vera_A[:, :in]
/// added. vera_A [r, max_in] and vera_B [max_out, r] are frozen and shared by every target (saved once, as
/// base_model.vera_A / base_model.vera_B, when save_projection is true); only the two vectors per target train.
/// </summary>
public sealed record VeraConfig : InjectedAdapterConfig
{
    public const string Type = "VERA";

    public const string LambdaB = "vera_lambda_b";
    public const string LambdaD = "vera_lambda_d";

    /// <summary>The shared projections' keys: under base_model, not under any module.</summary>
    public const string SharedAKey = "base_model.vera_A";
    public const string SharedBKey = "base_model.vera_B";

    public VeraConfig() => PeftType = Type;

    protected override string MethodPeftType => Type;

    public int R { get; init; } = 256;

    /// <summary>Seeds PEFT's torch generator for the projections; only used when they are not saved (refused here).</summary>
    public long ProjectionPrngKey { get; init; }

    /// <summary>False leaves the projections out of the file (PEFT regenerates them with torch's RNG): refused.</summary>
    public bool SaveProjection { get; init; } = true;

    /// <summary>Training only; the trainer refuses a positive value.</summary>
    [JsonConverter(typeof(PythonFloatConverter))] public double VeraDropout { get; init; }

    /// <summary>lambda_d's initial value.</summary>
    [JsonConverter(typeof(PythonFloatConverter))] public double DInitial { get; init; } = 0.1;

    /// <summary>"none" only: "vera_only" and "all" train biases, which is not implemented.</summary>
    public string Bias { get; init; } = "none";

    public bool InitWeights { get; init; } = true;

    /// <summary>Refused when set; kept to be written back.</summary>
    public JsonElement? LayersToTransform { get; init; }

    /// <summary>Refused when set; kept to be written back.</summary>
    public JsonElement? LayersPattern { get; init; }

    /// <summary>PEFT's VeRA has no default targets for these families but the LoRA ones (its mapping is LoRA's).</summary>
    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => DefaultTargetModules.Lora;

    /// <summary>No scale: the lambdas carry it. Conv1D (GPT-2) is read transposed, as PEFT forces fan_in_fan_out there.</summary>
    protected override TargetMatch Match(LinearSpec linear, ModelConfig model) => new(linear, R, 1, 1, IsFeedforward: false);

    /// <summary>lambda_b [out] and lambda_d [r] per target (trainable); the shared projections are buffers.</summary>
    protected override long AddedParameters(TargetMatch match) => match.Linear.OutFeatures + match.Rank;

    /// <summary>vera_lambda_b and vera_lambda_d of one target (saved without a ".weight" leaf).</summary>
    public IReadOnlyList<ExpectedTensor> ExpectedTensors(TargetMatch target)
    {
        var why = $"r = {target.Rank} on '{target.Path}' (out {target.Linear.OutFeatures})";
        return
        [
            new(AdapterFormat.ModuleKey(target.Path, LambdaB), [target.Linear.OutFeatures], ExpectedTensor.BaseNeeds, $"VeRA lambda_b, {why}"),
            new(AdapterFormat.ModuleKey(target.Path, LambdaD), [target.Rank], ExpectedTensor.BaseNeeds, $"VeRA lambda_d, {why}"),
        ];
    }

    /// <summary>vera_A [r, largest in] and vera_B [largest out, r] over all targets (PEFT's _find_dim).</summary>
    public IReadOnlyList<ExpectedTensor> SharedTensors(IReadOnlyList<TargetMatch> targets)
    {
        long maxIn = targets.Max(t => t.Linear.InFeatures), maxOut = targets.Max(t => t.Linear.OutFeatures);
        return
        [
            new(SharedAKey, [R, maxIn], ExpectedTensor.BaseNeeds, $"VeRA's shared vera_A, r = {R} x the largest target input {maxIn} (save_projection = true)"),
            new(SharedBKey, [maxOut, R], ExpectedTensor.BaseNeeds, $"VeRA's shared vera_B, the largest target output {maxOut} x r = {R} (save_projection = true)"),
        ];
    }

    public override void Validate()
    {
        base.Validate();
        Require(R > 0, "r", R, "a positive integer");
        Require(VeraDropout >= 0 && VeraDropout < 1, "vera_dropout", VeraDropout, "a probability in [0, 1)");
        Require(double.IsFinite(DInitial), "d_initial", DInitial, "a finite number");
        if (!SaveProjection)
            throw new PeftOnnxException($"{SourcePath}: save_projection = false is not supported for VERA adapters (expected true: the shared vera_A/vera_B must be in the adapter file; PEFT would regenerate them from projection_prng_key {ProjectionPrngKey} with torch's generator)");
        if (Bias != "none")
            throw new PeftOnnxException($"{SourcePath}: bias = \"{Bias}\" is not supported for VERA adapters (expected \"none\": trained biases are not implemented)");
        RefuseSet("layers_to_transform", LayersToTransform);
        RefuseSet("layers_pattern", LayersPattern);
    }

    private void RefuseSet(string key, JsonElement? value)
    {
        if (value is not { } v || v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0) return;
        throw new PeftOnnxException($"{SourcePath}: {key} = {v.GetRawText()} is not supported for VERA adapters (expected null: the VeRA layer filter is not implemented)");
    }
}
