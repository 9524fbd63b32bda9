using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's FourierFTConfig (0.13.2 keys; newer keys are kept): each target's weight [out, in] gets
/// Re(ifft2(S)) * scaling added, S the dense [out, in] spectrum holding fourierft_spectrum [n_frequency] at positions
/// PEFT recomputes from random_loc_seed (<see cref="FourierFtPositions"/>) and never saves. GPT-2's Conv1D layers
/// are adapted too (the delta is transposed onto their [in, out] weight).
/// </summary>
public sealed record FourierFtConfig : InjectedAdapterConfig
{
    public const string Type = "FOURIERFT";

    /// <summary>The saved module attribute (a ParameterDict entry: no ".weight" leaf).</summary>
    public const string Spectrum = "fourierft_spectrum";

    /// <summary>Keys newer PEFT writes that would change which modules are adapted; not implemented, so refused when set.</summary>
    private static readonly string[] RefusedWhenSet = ["exclude_modules"];

    public FourierFtConfig() => PeftType = Type;

    public int NFrequency { get; init; } = 1000;

    [JsonConverter(typeof(PythonFloatConverter))] public double Scaling { get; init; } = 150.0;

    /// <summary>Seeds the spectrum positions; an adapter without it cannot be reproduced, so it is required.</summary>
    public long? RandomLocSeed { get; init; }

    /// <summary>Per-module n_frequency: the first key k with re.match("(.*\.)?k$", name) wins.</summary>
    public Dictionary<string, int>? NFrequencyPattern { get; init; } = [];

    /// <summary>Which biases train besides the adapter; only "none" is implemented.</summary>
    public string Bias { get; init; } = "none";

    public bool InitWeights { get; init; }

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersToTransform { get; init; }

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersPattern { get; init; }

    protected override string MethodPeftType => Type;

    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => DefaultTargetModules.Lora;

    /// <summary>FourierFTModel._create_and_replace: n_frequency from the first matching pattern key; Rank holds it.</summary>
    protected override TargetMatch Match(LinearSpec linear, ModelConfig model)
    {
        var key = (NFrequencyPattern?.Keys ?? Enumerable.Empty<string>()).FirstOrDefault(k => PythonRegex.Match($@"(.*\.)?{k}$").IsMatch(linear.Path)) ?? linear.Path;
        int n = NFrequencyPattern is not null && NFrequencyPattern.TryGetValue(key, out var p) ? p : NFrequency;
        long size = linear.InFeatures * linear.OutFeatures;
        if (n <= 0 || n > size)
            throw new PeftOnnxException($"{SourcePath}: n_frequency = {n} for '{linear.Path}' is invalid (expected 1 to in * out = {size})");
        return new TargetMatch(linear, n, 0, Scaling, IsFeedforward: false);
    }

    /// <summary>fourierft_spectrum [n_frequency] of one adapted module.</summary>
    public ExpectedTensor SpectrumTensor(TargetMatch target) =>
        new(AdapterFormat.ModuleKey(target.Path, Spectrum), [target.Rank], ExpectedTensor.BaseNeeds,
            $"FourierFT spectrum, n_frequency = {target.Rank} on '{target.Path}'");

    /// <summary>(row, column) in the [out, in] weight of each spectrum entry of one module.</summary>
    public (int Row, int Column)[] PositionsFor(TargetMatch target) =>
        FourierFtPositions.For(checked((int)target.Linear.OutFeatures), checked((int)target.Linear.InFeatures), target.Rank, RandomLocSeed!.Value);

    protected override long AddedParameters(TargetMatch match) => match.Rank;

    public override void Validate()
    {
        base.Validate();
        if (RandomLocSeed is null)
            throw new PeftOnnxException($"{SourcePath}: random_loc_seed is missing or null (expected the integer seed of the spectrum positions, which PEFT never saves)");
        Require(NFrequency > 0, "n_frequency", NFrequency, "a positive integer");
        Require(double.IsFinite(Scaling), "scaling", Scaling, "a finite number");
        Require(Bias == "none", "bias", Bias, "\"none\" (training the base biases with FourierFT is not implemented)");
        foreach (var (key, n) in NFrequencyPattern ?? [])
        {
            Require(n > 0, $"n_frequency_pattern[\"{key}\"]", n, "a positive integer");
            if (PythonRegex.Error(key) is { } error) throw new PeftOnnxException($"{SourcePath}: n_frequency_pattern key: {error}");
        }
        RefuseSet("layers_to_transform", LayersToTransform);
        RefuseSet("layers_pattern", LayersPattern);
        foreach (var key in RefusedWhenSet)
            if (Extra is not null && Extra.TryGetValue(key, out var value)) RefuseSet(key, value);
    }

    private void RefuseSet(string key, JsonElement? value)
    {
        if (value is not { } v || v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0) return;
        throw new PeftOnnxException($"{SourcePath}: {key} = {v.GetRawText()} is not supported for FOURIERFT adapters (expected null: the FourierFT layer filter is not implemented)");
    }
}
