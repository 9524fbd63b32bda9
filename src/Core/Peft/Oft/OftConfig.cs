using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's OFTConfig as rewritten in PEFT 0.14 (keys of 0.20.0; unknown keys are kept): each target's input is rotated
/// by a block-diagonal matrix R before the frozen layer, y = (x @ R) @ W^T + b, R's blocks built from one row of
/// oft_R.weight each (<see cref="OftRotation"/>). Exactly one of r (the block count) and oft_block_size is set; the
/// other follows from the layer's in_features, which the block size must divide.
/// </summary>
public sealed record OftConfig : InjectedAdapterConfig
{
    public const string Type = "OFT";

    /// <summary>The saved module attribute (PEFT's OFTRotationModule, an nn.Module with a weight).</summary>
    public const string Rotation = "oft_R";

    public OftConfig() => PeftType = Type;

    /// <summary>Blocks per layer (0: derived from oft_block_size).</summary>
    public int R { get; init; }

    /// <summary>Side of each rotation block (0: derived from r). PEFT 0.14+ requires the key.</summary>
    public int? OftBlockSize { get; init; }

    /// <summary>Replaces whole blocks by the identity while training; the trainer refuses a positive value.</summary>
    [JsonConverter(typeof(PythonFloatConverter))] public double ModuleDropout { get; init; }

    /// <summary>Constrained OFT (projects the weights at each forward); not implemented, refused when true.</summary>
    public bool Coft { get; init; }

    /// <summary>COFT's radius; only read when coft is true.</summary>
    [JsonConverter(typeof(PythonFloatConverter))] public double Eps { get; init; } = 6e-5;

    /// <summary>One row of oft_R shared by every block of a layer.</summary>
    public bool BlockShare { get; init; }

    /// <summary>R_i from the truncated Neumann series (true) or the exact Cayley transform (false).</summary>
    public bool UseCayleyNeumann { get; init; } = true;

    public int NumCayleyNeumannTerms { get; init; } = 5;

    /// <summary>Which biases train besides the adapter; only "none" is implemented.</summary>
    public string Bias { get; init; } = "none";

    public bool InitWeights { get; init; } = true;

    /// <summary>Modules never adapted: a regex (full match) or a list of names or dotted suffixes.</summary>
    public TargetModules? ExcludeModules { get; init; }

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersToTransform { get; init; }

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersPattern { get; init; }

    protected override string MethodPeftType => Type;

    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => DefaultTargetModules.Lora;

    protected override bool IsTarget(TargetModules targets, string moduleName) =>
        !(ExcludeModules is { } excluded && excluded.Matches(moduleName)) && targets.Matches(moduleName);

    /// <summary>OFTLayer.update_layer: the block count and size for this module; the size must divide in_features.</summary>
    protected override TargetMatch Match(LinearSpec linear, ModelConfig model)
    {
        if (linear.IsConv1D)
            throw new PeftOnnxException($"{SourcePath}: target_modules selects '{linear.Path}', a transformers Conv1D layer, which PEFT's OFT does not support (only nn.Linear layers)");
        long inF = linear.InFeatures;
        int blockSize = OftBlockSize ?? 0;
        if (R != 0)
        {
            if (inF % R != 0)
                throw new PeftOnnxException($"{SourcePath}: r = {R} blocks do not divide in_features {inF} of '{linear.Path}' (expected a divisor of {inF})");
            blockSize = checked((int)(inF / R));
        }
        else if (inF % blockSize != 0)
            throw new PeftOnnxException($"{SourcePath}: oft_block_size = {blockSize} does not divide in_features {inF} of '{linear.Path}' (expected a divisor of {inF})");
        int blocks = checked((int)(inF / blockSize));
        return new TargetMatch(linear, blocks, 0, 1, IsFeedforward: false);
    }

    /// <summary>The side of the rotation blocks on one adapted module.</summary>
    public static int BlockSizeOf(TargetMatch target) => checked((int)(target.Linear.InFeatures / target.Rank));

    /// <summary>oft_R.weight [r (1 with block_share), b(b-1)/2]: the strict upper triangle of each block.</summary>
    public ExpectedTensor RotationTensor(TargetMatch target)
    {
        int b = BlockSizeOf(target);
        long rows = BlockShare ? 1 : target.Rank;
        return new(AdapterFormat.ModuleKey(target.Path, $"{Rotation}.{AdapterFormat.LinearWeight}"), [rows, OftRotation.TriangleLength(b)], ExpectedTensor.BaseNeeds,
            $"OFT rotation, {target.Rank} blocks of {b} on '{target.Path}' (in {target.Linear.InFeatures})");
    }

    protected override long AddedParameters(TargetMatch match) => RotationTensor(match).Shape.Aggregate(1L, (p, d) => p * d);

    public override void Validate()
    {
        base.Validate();
        if (OftBlockSize is null)
            throw new PeftOnnxException($"{SourcePath}: oft_block_size is missing: an OFT adapter from PEFT before 0.14 (another formulation, which current PEFT refuses as well; expected the key)");
        Require(R >= 0, "r", R, "a non-negative integer");
        Require(OftBlockSize >= 0, "oft_block_size", OftBlockSize, "a non-negative integer");
        if ((R != 0) == (OftBlockSize != 0))
            throw new PeftOnnxException($"{SourcePath}: r = {R} and oft_block_size = {OftBlockSize} (expected exactly one of them nonzero)");
        Require(ModuleDropout >= 0 && ModuleDropout < 1, "module_dropout", ModuleDropout, "a probability in [0, 1)");
        Require(!Coft, "coft", Coft, "false (constrained OFT is not implemented)");
        Require(NumCayleyNeumannTerms >= 2, "num_cayley_neumann_terms", NumCayleyNeumannTerms, "an integer of at least 2");
        Require(Bias == "none", "bias", Bias, "\"none\" (training the base biases with OFT is not implemented)");
        Require(!FanInFanOut, "fan_in_fan_out", FanInFanOut, "false (PEFT's OFT adapts nn.Linear layers only)");
        if (ExcludeModules?.Pattern is { } pattern && PythonRegex.Error(pattern) is { } error)
            throw new PeftOnnxException($"{SourcePath}: exclude_modules: {error}");
        RefuseSet("layers_to_transform", LayersToTransform);
        RefuseSet("layers_pattern", LayersPattern);
    }

    /// <summary>The config as PEFT saves it: target_modules filled; fan_in_fan_out stays false (nn.Linear only).</summary>
    public override InjectedAdapterConfig PreparedFor(Architecture arch) => this with { TargetModules = TargetModulesFor(arch) };

    private void RefuseSet(string key, JsonElement? value)
    {
        if (value is not { } v || v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0) return;
        throw new PeftOnnxException($"{SourcePath}: {key} = {v.GetRawText()} is not supported for OFT adapters (expected null: the OFT layer filter is not implemented)");
    }
}
