using System.Text.Json.Serialization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// Keys and placement rules shared by the methods PEFT injects into the base model's layers (LoRA, IA3): which
/// modules they wrap (target_modules), which modules are copied and trained whole (modules_to_save), and the
/// weight layout flag. The placement walk is PEFT 0.7.1's BaseTuner.inject_adapter, written once here.
/// </summary>
public abstract record InjectedAdapterConfig : AdapterConfig
{
    public TargetModules? TargetModules { get; init; }
    public virtual bool FanInFanOut { get; init; }
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>PEFT's per-family target_modules used when the config leaves it null.</summary>
    [JsonIgnore] protected abstract IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargets { get; }

    /// <summary>PEFT's shorthand for every linear layer but the output head (matched case-insensitively, as PEFT does).</summary>
    public const string AllLinear = "all-linear";

    /// <summary>
    /// target_modules, or PEFT's default for the family when null (the tuner's _prepare_adapter_config); "all-linear"
    /// resolved as _maybe_include_all_linear_layers does: the full names of every linear layer except the output head.
    /// </summary>
    public TargetModules TargetModulesFor(Architecture arch)
    {
        var model = arch.Config;
        if (TargetModules is { Pattern: { } p } && p.Equals(AllLinear, StringComparison.OrdinalIgnoreCase))
        {
            var head = arch.OutputHead.EndsWith(".weight", StringComparison.Ordinal) ? arch.OutputHead[..^".weight".Length] : arch.OutputHead;
            return TargetModules.FromNames(arch.Linears.Select(l => l.Path).Where(path => path != head));
        }
        return TargetModules ?? (DefaultTargets.TryGetValue(model.ModelType, out var names)
            ? TargetModules.FromNames(names)
            : throw new PeftOnnxException($"{SourcePath}: target_modules is null and PEFT has no default for model_type '{model.ModelType}' (set target_modules)"));
    }

    /// <summary>The linear modules the adapter wraps, in Architecture.Linears order.</summary>
    public IReadOnlyList<TargetMatch> FindTargets(Architecture arch) => Place(arch).Targets;

    /// <summary>Modules that modules_to_save copies and trains whole (PEFT's ModulesToSaveWrapper), in module order.</summary>
    public IReadOnlyList<string> FindModulesToSave(Architecture arch) => Place(arch).ModulesToSave;

    /// <summary>
    /// PEFT's inject_adapter: walks every module name in order; a name ending with an entry of modules_to_save is
    /// wrapped for saving (and not adapted); otherwise, if it matches the targets, it is adapted. Fails as PEFT
    /// does when nothing matches or when a match is not a linear layer.
    /// </summary>
    public AdapterPlacement Place(Architecture arch)
    {
        var targets = TargetModulesFor(arch);
        var linears = arch.Linears.ToDictionary(l => l.Path);
        var saved = new List<string>();
        var adapted = new HashSet<string>();
        foreach (var name in ModuleNames.Of(arch))
        {
            var isSaved = ModulesToSave is not null && ModulesToSave.Any(m => name.EndsWith(m, StringComparison.Ordinal));
            var isTarget = !isSaved && IsTarget(targets, name);
            if (!isSaved && !isTarget) continue;
            // PEFT looks the module up by its dotted path, which no longer exists once a parent was wrapped.
            var wrapper = saved.FirstOrDefault(s => name.StartsWith(s + ".", StringComparison.Ordinal));
            if (wrapper is not null)
                throw new PeftOnnxException($"{SourcePath}: module '{name}' lies inside '{wrapper}', which modules_to_save replaces (PEFT cannot {(isSaved ? "save" : "adapt")} it there)");
            if (isSaved) { saved.Add(name); continue; }
            if (!linears.ContainsKey(name))
                throw new PeftOnnxException($"{SourcePath}: target_modules {targets} selects '{name}', which is not a linear layer (only linear layers can be adapted)");
            adapted.Add(name);
        }
        if (adapted.Count == 0)
        {
            var suffixes = arch.Linears.Select(l => l.Path[(l.Path.LastIndexOf('.') + 1)..]).Distinct();
            throw new PeftOnnxException(MessageText.OneLine($"{SourcePath}: target_modules {targets}{LayerFilterDescription} matches no module of {arch.ClassName} (its linear layers end in: {string.Join(", ", suffixes)})"));
        }
        var matches = arch.Linears.Where(l => adapted.Contains(l.Path)).Select(l => Match(l, arch.Config)).ToList();
        return new AdapterPlacement(matches, saved);
    }

    /// <summary>Whether PEFT adapts the module (check_target_module_exists); LoRA adds its layer filter.</summary>
    protected virtual bool IsTarget(TargetModules targets, string moduleName) => targets.Matches(moduleName);

    /// <summary>For messages: the layer filter that narrowed the targets, if any.</summary>
    [JsonIgnore] protected virtual string LayerFilterDescription => "";

    /// <summary>What the method decides for one adapted module (rank and alpha, or feed-forward).</summary>
    protected abstract TargetMatch Match(LinearSpec linear, ModelConfig model);

    /// <summary>Parameters the adapter adds to one module: r*(in+out) for LoRA, in or out for IA3.</summary>
    protected abstract long AddedParameters(TargetMatch match);

    /// <summary>Base parameters the method unfreezes besides its own (LoRA's bias = "all").</summary>
    protected virtual long TrainableBaseParameters(Architecture arch) => 0;

    /// <summary>
    /// Adapter weights plus one trainable copy of each modules_to_save module; the base stays frozen apart from
    /// what <see cref="TrainableBaseParameters"/> unfreezes.
    /// </summary>
    public override ParameterCount CountParameters(Architecture arch)
    {
        var placement = Place(arch);
        long added = placement.Targets.Sum(AddedParameters);
        long copies = placement.ModulesToSave.Sum(m => ModuleNames.ParameterCountUnder(arch, m));
        long frozen = placement.Targets.Sum(FrozenAddedParameters);
        return new ParameterCount(added + copies + TrainableBaseParameters(arch), arch.CountParameters() + added + copies + frozen);
    }

    /// <summary>Parameters the method adds per target that do not train (AdaLoRA's ranknum); counted in all params only.</summary>
    protected virtual long FrozenAddedParameters(TargetMatch match) => 0;

    /// <summary>
    /// The config as PEFT holds (and saves) it once attached: target_modules filled with the family default, and
    /// fan_in_fan_out set to the layout of the adapted modules. PEFT flips that flag, with a warning, for each
    /// Conv1D target while it is false and each nn.Linear target while it is true, so the last target decides.
    /// </summary>
    public override InjectedAdapterConfig PreparedFor(Architecture arch)
    {
        var targets = FindTargets(arch);
        return this with { TargetModules = TargetModulesFor(arch), FanInFanOut = targets[^1].Linear.IsConv1D };
    }

    public override void Validate()
    {
        base.Validate();
        if (ModulesToSave is not null && ModulesToSave.Any(m => m is null))
            throw new PeftOnnxException($"{SourcePath}: modules_to_save must list module names (strings), found null");
        if (TargetModules?.Pattern is { } pattern && PythonRegex.Error(pattern) is { } error)
            throw new PeftOnnxException($"{SourcePath}: target_modules: {error}");
    }
}

/// <summary>Where an injected adapter goes: the wrapped linear modules and the modules copied for training.</summary>
public sealed record AdapterPlacement(IReadOnlyList<TargetMatch> Targets, IReadOnlyList<string> ModulesToSave);
