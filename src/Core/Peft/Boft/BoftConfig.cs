using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's BOFTConfig (keys of 0.13.2 to 0.20.0; unknown keys are kept): each target's weight is rotated and scaled,
/// y = x @ ((W @ R^T) * s)^T + b, R the product of boft_n_butterfly_factor permuted block-diagonal matrices whose
/// blocks are Cayley transforms of boft_R [factor, blocks, size, size] (<see cref="BoftRotation"/> spells out the
/// arithmetic) and s = boft_s [out, 1]. Exactly one of boft_block_size and boft_block_num is set; the other follows
/// from the layer's in_features, which it must divide (PEFT's BOFTLayer.update_layer checks, all kept).
/// </summary>
public sealed record BoftConfig : InjectedAdapterConfig
{
    public const string Type = "BOFT";

    /// <summary>The saved module attributes (ParameterDict entries: no ".weight" leaf).</summary>
    public const string Rotation = "boft_R";
    public const string Scale = "boft_s";

    private const string ExcludeModulesKey = "exclude_modules";

    public BoftConfig() => PeftType = Type;

    /// <summary>Side of each block (0: derived from boft_block_num).</summary>
    public int BoftBlockSize { get; init; } = 4;

    /// <summary>Blocks per layer (0: derived from boft_block_size).</summary>
    public int BoftBlockNum { get; init; }

    /// <summary>Butterfly factors: the number of permuted block-diagonal matrices multiplied into R (1: plain OFT blocks).</summary>
    public int BoftNButterflyFactor { get; init; } = 1;

    /// <summary>Replaces whole blocks by the identity while training; the trainer refuses a positive value.</summary>
    [JsonConverter(typeof(PythonFloatConverter))] public double BoftDropout { get; init; }

    /// <summary>Which base biases train besides the adapter: "none", "all" (every parameter named *bias*) or "boft_only" (the adapted layers' biases).</summary>
    public string Bias { get; init; } = "none";

    public bool InitWeights { get; init; } = true;

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersToTransform { get; init; }

    /// <summary>Refused when set (see <see cref="Validate"/>); kept to be written back.</summary>
    public JsonElement? LayersPattern { get; init; }

    /// <summary>exclude_modules (PEFT 0.14+, absent from 0.13.2 files, so read from the kept keys; named apart from the key so the serializer keeps it): modules never adapted.</summary>
    [JsonIgnore] public TargetModules? ExcludedModules => LoraNewerKeys.Modules(Extra, ExcludeModulesKey, SourcePath);

    protected override string MethodPeftType => Type;

    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => DefaultTargetModules.Lora;

    protected override bool IsTarget(TargetModules targets, string moduleName) =>
        !(ExcludedModules is { } excluded && excluded.Matches(moduleName)) && targets.Matches(moduleName);

    /// <summary>BOFTLayer.update_layer: the block count (the match's rank) for this module, with every check PEFT makes.</summary>
    protected override TargetMatch Match(LinearSpec linear, ModelConfig model)
    {
        if (linear.IsConv1D)
            throw new PeftOnnxException($"{SourcePath}: target_modules selects '{linear.Path}', a transformers Conv1D layer, which PEFT's BOFT does not support (only nn.Linear layers)");
        long inF = linear.InFeatures;
        int extra = BoftNButterflyFactor - 1;
        long span = 1L << extra;
        long blocks, size;
        string where = $"in_features {inF} of '{linear.Path}'";
        if (BoftBlockNum != 0)
        {
            if (inF % BoftBlockNum != 0)
                throw new PeftOnnxException($"{SourcePath}: boft_block_num = {BoftBlockNum} does not divide {where} (expected a divisor of {inF})");
            if (extra > 0 && (extra > (int)Math.Floor(Math.Log2(BoftBlockNum)) || BoftBlockNum % span != 0))
                throw new PeftOnnxException($"{SourcePath}: boft_block_num = {BoftBlockNum} does not fit boft_n_butterfly_factor = {BoftNButterflyFactor} (expected a multiple of 2^{extra} = {span})");
            blocks = BoftBlockNum;
            size = inF / blocks;
        }
        else
        {
            if (inF % BoftBlockSize != 0)
                throw new PeftOnnxException($"{SourcePath}: boft_block_size = {BoftBlockSize} does not divide {where} (expected a divisor of {inF})");
            if (extra > 0 && inF % (BoftBlockSize * span) != 0)
                throw new PeftOnnxException($"{SourcePath}: boft_block_size = {BoftBlockSize} with boft_n_butterfly_factor = {BoftNButterflyFactor} does not fit {where} (expected block size x 2^{extra} = {BoftBlockSize * span} to divide it)");
            size = BoftBlockSize;
            blocks = inF / size;
        }
        if (extra > 0 && (blocks % 2 != 0 || size % 2 != 0))
            throw new PeftOnnxException($"{SourcePath}: boft_n_butterfly_factor = {BoftNButterflyFactor} needs an even block count and size, but {where} gives {blocks} blocks of {size}");
        return new TargetMatch(linear, checked((int)blocks), 0, 1, IsFeedforward: false);
    }

    /// <summary>The side of the blocks on one adapted module.</summary>
    public static int BlockSizeOf(TargetMatch target) => checked((int)(target.Linear.InFeatures / target.Rank));

    /// <summary>boft_R [factor, blocks, size, size] of one adapted module.</summary>
    public ExpectedTensor RotationTensor(TargetMatch target)
    {
        int b = BlockSizeOf(target);
        return new(AdapterFormat.ModuleKey(target.Path, Rotation), [BoftNButterflyFactor, target.Rank, b, b], ExpectedTensor.BaseNeeds,
            $"BOFT rotation, {BoftNButterflyFactor} butterfly factor(s) of {target.Rank} blocks of {b} on '{target.Path}' (in {target.Linear.InFeatures})");
    }

    /// <summary>boft_s [out, 1] of one adapted module.</summary>
    public static ExpectedTensor ScaleTensor(TargetMatch target) =>
        new(AdapterFormat.ModuleKey(target.Path, Scale), [target.Linear.OutFeatures, 1], ExpectedTensor.BaseNeeds,
            $"BOFT output scale of '{target.Path}' (out {target.Linear.OutFeatures})");

    public IEnumerable<ExpectedTensor> ExpectedTensors(TargetMatch target) => [RotationTensor(target), ScaleTensor(target)];

    protected override long AddedParameters(TargetMatch match) =>
        ExpectedTensors(match).Sum(t => t.Shape.Aggregate(1L, (p, d) => p * d));

    /// <summary>
    /// bias = "all": every parameter whose name contains "bias" (T5's relative_attention_bias too); "boft_only": the
    /// biases of the adapted layers (BaseTunerLayer.bias, the wrapped layer's).
    /// </summary>
    protected override long TrainableBaseParameters(Architecture arch) => Bias switch
    {
        "all" => arch.Parameters.Where(p => p.Name.Contains("bias", StringComparison.Ordinal)).Sum(p => p.ElementCount),
        "boft_only" => FindTargets(arch).Where(t => t.Linear.HasBias).Sum(t => t.Linear.OutFeatures),
        _ => 0,
    };

    public override void Validate()
    {
        base.Validate();
        Require(BoftBlockSize >= 0, "boft_block_size", BoftBlockSize, "a non-negative integer");
        Require(BoftBlockNum >= 0, "boft_block_num", BoftBlockNum, "a non-negative integer");
        if ((BoftBlockSize != 0) == (BoftBlockNum != 0))
            throw new PeftOnnxException($"{SourcePath}: boft_block_size = {BoftBlockSize} and boft_block_num = {BoftBlockNum} (expected exactly one of them nonzero)");
        Require(BoftNButterflyFactor >= 1 && BoftNButterflyFactor <= 30, "boft_n_butterfly_factor", BoftNButterflyFactor, "a positive integer");
        Require(BoftDropout >= 0 && BoftDropout < 1, "boft_dropout", BoftDropout, "a probability in [0, 1)");
        Require(Bias is "none" or "all" or "boft_only", "bias", Bias, "\"none\", \"all\" or \"boft_only\"");
        if (ExcludedModules?.Pattern is { } pattern && PythonRegex.Error(pattern) is { } error)
            throw new PeftOnnxException($"{SourcePath}: exclude_modules: {error}");
        RefuseSet("layers_to_transform", LayersToTransform);
        RefuseSet("layers_pattern", LayersPattern);
    }

    /// <summary>
    /// The config as PEFT saves it: target_modules filled; fan_in_fan_out false, as BOFTModel resets it (with a
    /// warning) for nn.Linear targets, the only ones it adapts.
    /// </summary>
    public override InjectedAdapterConfig PreparedFor(Architecture arch) => this with { TargetModules = TargetModulesFor(arch), FanInFanOut = false };

    private void RefuseSet(string key, JsonElement? value)
    {
        if (value is not { } v || v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0) return;
        throw new PeftOnnxException($"{SourcePath}: {key} = {v.GetRawText()} is not supported for BOFT adapters (expected null: the BOFT layer filter is not implemented)");
    }
}
