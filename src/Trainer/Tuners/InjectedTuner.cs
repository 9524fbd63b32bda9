using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>
/// PEFT's BaseTuner for the injected methods: wraps each target linear with a layer, copies modules_to_save,
/// names parameters as PEFT does, saves and loads the adapter state, merges and unloads. LoRA and IA3 fill in how
/// a layer is built and what else (LoRA's biases) is trained and saved.
/// </summary>
public abstract class InjectedTuner<TLayer> : IMergeableTuner where TLayer : InjectedLayer
{
    private readonly List<TLayer> _layers = [];
    private readonly List<ModuleCopy> _modulesToSave = [];
    private bool _unloaded;
    private bool _sharedDisposed;

    protected InjectedTuner(PretrainedModel model, InjectedAdapterConfig config, Func<TargetMatch, TLayer> createLayer)
    {
        Model = model;
        var placement = config.Place(model.Architecture);
        Config = config.PreparedFor(model.Architecture);
        try
        {
            // PEFT creates the layers in module order, so seeded random init draws in the same order.
            foreach (var target in placement.Targets)
            {
                var layer = createLayer(target);
                _layers.Add(layer);
                model.Linears.Wrap(target.Path, layer);
            }
            foreach (var module in placement.ModulesToSave) _modulesToSave.Add(new ModuleCopy(model.Parameters, module));
        }
        catch
        {
            Detach();
            throw;
        }
    }

    public PretrainedModel Model { get; }
    public AdapterConfig Config { get; }

    /// <summary>The wrapped modules' layers, in module order.</summary>
    public IReadOnlyList<TLayer> Layers => _layers;

    /// <summary>The modules_to_save copies, in module order.</summary>
    public IReadOnlyList<ModuleCopy> ModulesToSave => _modulesToSave;

    public int PrependedTokens => 0;
    public CausalLmInput PrepareCausal(CausalLmInput input) => input;
    public Seq2SeqLmInput PrepareSeq2Seq(Seq2SeqLmInput input) => input;

    /// <summary>
    /// Base tensors (store names, not inside a modules_to_save module) this method unfreezes besides its own
    /// parameters: LoRA's bias = "all". Distinct tensors only.
    /// </summary>
    protected virtual IReadOnlyList<string> TrainableBaseNames => [];

    /// <summary>
    /// Base tensors PEFT's get_peft_model_state_dict writes besides the adapter (LoRA's bias = "all"), as
    /// (state-dict name as PEFT writes it below its model prefix, tensor, whether loading puts it back into the model).
    /// </summary>
    protected virtual IEnumerable<(string Name, Tensor Value, bool Loads)> SavedBaseTensors() => [];

    /// <summary>
    /// Frozen tensors the method shares across layers and saves under their own full key (VeRA's projections):
    /// written by save, required by load.
    /// </summary>
    protected virtual IReadOnlyList<(string Key, Tensor Value)> SharedTensors => [];

    /// <summary>Frees what <see cref="SharedTensors"/> holds; runs once, when the tuner is disposed.</summary>
    protected virtual void DisposeShared() { }

    /// <summary>PEFT's named_parameters() name of a base tensor: a wrapped linear's own tensors sit under base_layer.</summary>
    protected string PeftNameOf(string storeName)
    {
        var dot = storeName.LastIndexOf('.');
        return dot > 0 && Model.Linears.Adapters.ContainsKey(storeName[..dot]) ? AdapterFormat.BaseLayerName(storeName) : storeName;
    }

    /// <summary>
    /// bias = "all" (LoRA, BOFT): _mark_only_adapters_as_trainable unfreezes every parameter whose name contains
    /// "bias"; those inside a modules_to_save module train as the copy's own.
    /// </summary>
    protected IReadOnlyList<string> AllBiasNames() =>
        Model.Parameters.Distinct().Select(p => p.Name).Where(n => n.Contains("bias", StringComparison.Ordinal) && SavedModuleOf(n) is null).ToList();

    /// <summary>
    /// bias = "all": get_peft_model_state_dict keeps every state_dict key containing "bias". A wrapped linear's bias
    /// is keyed under base_layer; inside a modules_to_save module both the original and the copy keys match too, and
    /// PEFT saves them (as ".original_module." and ".modules_to_save.") but cannot load them back.
    /// </summary>
    protected IEnumerable<(string Name, Tensor Value, bool Loads)> AllBiasTensors()
    {
        foreach (var name in Model.Parameters.Names.Where(n => n.Contains("bias", StringComparison.Ordinal)))
        {
            if (SavedModuleOf(name) is { } module)
            {
                var leaf = module.Leaf(name);
                yield return ($"{module.Module}.original_module.{leaf}", module.Originals.First(o => o.Name == name).Original, false);
                yield return ($"{module.Module}.modules_to_save.{leaf}", Model.Parameters[name], false);
            }
            else yield return (PeftNameOf(name), Model.Parameters[name], true);
        }
    }

    /// <summary>The modules_to_save module a store name lies in, if any.</summary>
    protected ModuleCopy? SavedModuleOf(string storeName) =>
        _modulesToSave.FirstOrDefault(m => storeName.StartsWith(m.Module + ".", StringComparison.Ordinal));

    public IReadOnlyList<(string Name, Tensor Parameter)> TrainableParameters
    {
        get
        {
            ThrowIfUnloaded();
            // named_parameters() order: a module's base tensors, then its adapter; modules in model order.
            var order = Model.Architecture.Parameters.Select((p, i) => (p.Name, i)).ToDictionary(p => p.Name, p => p.i, StringComparer.Ordinal);
            int Position(string module) =>
                order.Where(kv => kv.Key.StartsWith(module + ".", StringComparison.Ordinal)).Select(kv => kv.Value).DefaultIfEmpty(int.MaxValue).Max();
            var entries = new List<(int Position, int Seq, string Name, Tensor Parameter)>();
            int seq = 0;
            foreach (var name in TrainableBaseNames)
                entries.Add((order.GetValueOrDefault(name, int.MaxValue), seq++, AdapterFormat.BaseKey(PeftNameOf(name)), Model.Parameters[name]));
            foreach (var layer in _layers)
                foreach (var p in layer.Parameters)
                    entries.Add((Position(layer.Path), seq++, p.NamedOn(layer.Path), p.Value));
            foreach (var module in _modulesToSave)
            {
                var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
                foreach (var (name, copy) in module.Copies)
                    if (seen.Add(copy))
                        entries.Add((order.GetValueOrDefault(name, int.MaxValue), seq++, AdapterFormat.NamedSavedModuleParameter(module.Module, module.Leaf(name)), copy));
            }
            return entries.OrderBy(e => e.Position).ThenBy(e => e.Seq).Select(e => (e.Name, e.Parameter)).ToList();
        }
    }

    /// <summary>
    /// A Conv1D weight (GPT-2's) is [out, in] in the store but [in, out] in the checkpoint layout PEFT saves a
    /// modules_to_save copy in.
    /// </summary>
    private bool IsConv1DWeight(string storeName) => Model.Architecture.Linears.Any(l => l.IsConv1D && l.WeightName == storeName);

    /// <summary>
    /// get_peft_model_state_dict: adapter tensors without ".default", each modules_to_save copy under the module's
    /// own name ("base_model.model.lm_head.weight", in the checkpoint's layout), plus the method's base tensors.
    /// Fresh CPU copies.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> AdapterStateDict()
    {
        ThrowIfUnloaded();
        using var scope = NewDisposeScope();
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        static Tensor Fresh(Tensor t) => t.detach().cpu().contiguous().clone().MoveToOuterDisposeScope();
        foreach (var (name, value, _) in SavedBaseTensors()) state[AdapterFormat.BaseKey(name)] = Fresh(value);
        foreach (var (key, value) in SharedTensors) state[key] = Fresh(value);
        foreach (var layer in _layers)
            foreach (var p in layer.Parameters)
                state[p.SavedOn(layer.Path)] = Fresh(p.Value);
        foreach (var module in _modulesToSave)
            foreach (var (name, copy) in module.Copies)
                state[AdapterFormat.BaseKey(name)] = Fresh(IsConv1DWeight(name) ? copy.detach().t() : copy);
        return state;
    }

    /// <summary>
    /// set_peft_model_state_dict, strict about names and shapes: every tensor the adapter needs must be there with
    /// its shape, and nothing else may be; nothing is changed unless all of it fits. Trained base tensors (LoRA's
    /// bias = "all") are taken when present, as PEFT's non-strict load takes them, and left as they are otherwise.
    /// </summary>
    public void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> state, string path)
    {
        ThrowIfUnloaded();
        var file = string.IsNullOrEmpty(path) ? AdapterFormat.WeightsFile : path;
        var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var optional = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, value, loads) in SavedBaseTensors())
        {
            if (!loads) continue;
            var key = AdapterFormat.BaseKey(name);
            targets[key] = value;
            optional.Add(key);
        }
        foreach (var (key, value) in SharedTensors) targets[key] = value;
        foreach (var layer in _layers)
            foreach (var p in layer.Parameters)
                targets[p.SavedOn(layer.Path)] = p.Value;
        var transposed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var module in _modulesToSave)
            foreach (var (name, copy) in module.Copies)
            {
                var key = AdapterFormat.BaseKey(name);
                targets[key] = copy;
                if (IsConv1DWeight(name)) transposed.Add(key);
            }

        foreach (var (name, value) in state)
        {
            if (!targets.TryGetValue(name, out var target)) continue;
            var needed = transposed.Contains(name) ? target.shape.Reverse().ToArray() : target.shape;
            if (!value.shape.SequenceEqual(needed))
                throw new PeftOnnxException($"{file}: tensor '{name}' has shape {Show(value.shape)} but the base model needs {Show(needed)}");
        }
        var missing = targets.Keys.Where(k => !state.ContainsKey(k) && !optional.Contains(k)).ToList();
        var unexpected = state.Keys.Where(k => !targets.ContainsKey(k) && !AdapterFormat.IsNeverLoaded(k)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing {List(missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected {List(unexpected)}");
            throw new PeftOnnxException($"{file}: the {Config.PeftType} adapter does not fit {Model.Architecture.ClassName} with this adapter_config.json: {string.Join("; ", parts)}");
        }
        using var noGrad = no_grad();
        foreach (var (name, target) in targets)
        {
            if (!state.TryGetValue(name, out var value)) continue;
            if (transposed.Contains(name))
            {
                using var t = value.t();
                target.copy_(t);
            }
            else target.copy_(value);
        }
    }

    private static string Show(long[] shape) => $"[{string.Join(", ", shape)}]";

    private static string List(IReadOnlyList<string> names) =>
        string.Join(", ", names.Take(6).Select(n => $"'{n}'")) + (names.Count > 6 ? $" (and {names.Count - 6} more)" : "");

    public bool Merged => _layers.Count > 0 && _layers.All(l => l.Merged);

    public void Merge()
    {
        ThrowIfUnloaded();
        // all or nothing: a layer that cannot merge leaves every layer unmerged
        foreach (var layer in _layers) layer.CheckMergeable(Model.Linears[layer.Path]);
        foreach (var layer in _layers) layer.Merge(Model.Linears[layer.Path]);
    }

    public void Unmerge()
    {
        ThrowIfUnloaded();
        foreach (var layer in _layers) layer.Unmerge(Model.Linears[layer.Path]);
    }

    public PretrainedModel MergeAndUnload()
    {
        Merge();
        return Unload();
    }

    public PretrainedModel Unload()
    {
        ThrowIfUnloaded();
        foreach (var layer in _layers)
        {
            Model.Linears.Unwrap(layer.Path);
            layer.Dispose();
        }
        _layers.Clear();
        foreach (var module in _modulesToSave) module.KeepCopies();
        _modulesToSave.Clear();
        FreezeBase();
        _unloaded = true;
        return Model;
    }

    /// <summary>Refreezes what <see cref="TrainableBaseNames"/> unfroze.</summary>
    private void FreezeBase()
    {
        foreach (var name in TrainableBaseNames)
            if (Model.Parameters.TryGet(name) is { } t) t.requires_grad_(false);
    }

    /// <summary>Takes the adapter off again, leaving the base model as it was loaded (merged weights are unmerged).</summary>
    private void Detach()
    {
        foreach (var layer in _layers)
        {
            layer.Unmerge(Model.Linears[layer.Path]);
            Model.Linears.Unwrap(layer.Path);
            layer.Dispose();
        }
        _layers.Clear();
        foreach (var module in _modulesToSave) module.Restore();
        _modulesToSave.Clear();
    }

    private void ThrowIfUnloaded()
    {
        if (_unloaded) throw new InvalidOperationException($"the {Config.PeftType} adapter was unloaded from the model (merge_and_unload / unload)");
    }

    public void Dispose()
    {
        if (!_unloaded)
        {
            FreezeBase();
            Detach();
            _unloaded = true;
        }
        if (!_sharedDisposed)
        {
            DisposeShared();
            _sharedDisposed = true;
        }
        GC.SuppressFinalize(this);
    }
}
