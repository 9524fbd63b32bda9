using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT 0.7.1's IA3Config: a learned vector scales each target's output (attention k/v: rows of W and the bias)
/// or, for feed-forward targets, its input (columns of W).
/// </summary>
public sealed record Ia3Config : InjectedAdapterConfig
{
    public const string Type = "IA3";

    public Ia3Config() => PeftType = Type;

    /// <summary>Targets whose input is scaled; a list (matched as a plain name suffix) or a regex; null = PEFT's family default.</summary>
    public TargetModules? FeedforwardModules { get; init; }

    [JsonPropertyName("init_ia3_weights")] public bool InitIa3Weights { get; init; } = true;

    protected override string MethodPeftType => Type;
    protected override IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets => DefaultTargetModules.Ia3;

    /// <summary>feedforward_modules, or PEFT's default for the family when null.</summary>
    public TargetModules FeedforwardModulesFor(ModelConfig model) =>
        FeedforwardModules ?? (DefaultTargetModules.Ia3Feedforward.TryGetValue(model.ModelType, out var names)
            ? TargetModules.FromNames(names)
            : throw new PeftOnnxException($"{SourcePath}: feedforward_modules is null and PEFT has no default for model_type '{model.ModelType}' (set feedforward_modules)"));

    /// <summary>IA3Model._check_target_module_feedforward decides which side of the module the vector scales.</summary>
    protected override TargetMatch Match(LinearSpec linear, ModelConfig model) =>
        new(linear, Rank: 0, Alpha: 0, Scaling: 0, IsFeedforward: FeedforwardModulesFor(model).MatchesWithoutDot(linear.Path));

    /// <summary>One scale per input feature (feed-forward) or per output feature.</summary>
    protected override long AddedParameters(TargetMatch match) => match.IsFeedforward ? match.Linear.InFeatures : match.Linear.OutFeatures;

    /// <summary>Also fills feedforward_modules with the family default, as IA3Model._prepare_adapter_config does.</summary>
    public override Ia3Config PreparedFor(Architecture arch) =>
        (Ia3Config)base.PreparedFor(arch) with { FeedforwardModules = FeedforwardModulesFor(arch.Config) };

    public override void Validate()
    {
        base.Validate();
        if (FeedforwardModules?.Pattern is { } pattern && PythonRegex.Error(pattern) is { } error)
            throw new PeftOnnxException($"{SourcePath}: feedforward_modules: {error}");
        // IA3Config.__post_init__ runs this check only when both are lists.
        if (FeedforwardModules?.Names is { } ff && TargetModules?.Names is { } targets && ff.Except(targets).FirstOrDefault() is { } extra)
            throw new PeftOnnxException($"{SourcePath}: feedforward_modules must be a subset of target_modules ('{extra}' is not a target)");
    }
}
