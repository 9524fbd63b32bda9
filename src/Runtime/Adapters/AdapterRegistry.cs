using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Peft;

namespace Peft.Onnx.Runtime.Adapters;

/// <summary>
/// The adapters of a loaded multi-adapter export, changed at run time: each add or remove publishes a new
/// <see cref="AdapterSlots"/> (a copy of the stacks with the change), generators lease the state current at their start.
/// Slots are stable: an adapter keeps its slot while loaded, a new one takes the first free slot (one removed earlier)
/// or a new slot at the end (the base slot stays last, so index -1 keeps reaching it). LoRA in the row layout appends an
/// added adapter's rows and drops a removed one's at once (<see cref="RowStackGrowth"/>); in the gather layout a rank
/// above a module's padded rank re-pads that module's stacks (zeros change no product). Where the export stacks prefixes
/// (it holds a prompt-learning adapter), every slot has one (<see cref="PrefixSlots"/>: empty for LoRA and IA3), and a
/// prefix-tuning adapter added fills its slot's, longer than the others growing them all (padding in front is masked).
/// </summary>
internal sealed class AdapterRegistry : IDisposable
{
    private readonly object _lock = new();
    private readonly string _dir;
    private readonly AdapterManifest _manifest;
    private readonly Architecture _architecture;
    private AdapterSlots _current;

    /// <summary>The manifest's LoRA / IA3 stacks (<see cref="AdapterStackNames"/>) and its prefix stacks (<see cref="PrefixStackNames"/>).</summary>
    private readonly IReadOnlyList<AdapterStackTensor> _stacks, _prefixStacks;

    public AdapterRegistry(string dir, AdapterManifest manifest, Architecture architecture)
    {
        _dir = dir;
        _manifest = manifest;
        _architecture = architecture;
        _prefixStacks = manifest.Stacks.Where(s => PrefixStackNames.Parse(s.Name) != null).ToList();
        _stacks = manifest.Stacks.Where(s => PrefixStackNames.Parse(s.Name) == null).ToList();
        _current = new AdapterSlots(manifest.Adapters.Select(a => (string?)a.Name).ToArray(), null,
            virtualTokens: manifest.Adapters.Select(a => a.VirtualTokens).ToArray());
    }

    public IReadOnlyList<string> Names
    {
        get { lock (_lock) return _current.Names; }
    }

    /// <summary>The current state, leased: bind its tensors, use its indices, dispose when the generation ends.</summary>
    public AdapterLease Lease()
    {
        lock (_lock)
        {
            if (!_current.TryAcquire()) throw new ObjectDisposedException(nameof(AdapterRegistry));
            return new AdapterLease(_current);
        }
    }

    /// <summary>The virtual tokens <paramref name="name"/>'s slot prepends (exported prompt-learning adapters; 0 for the others).</summary>
    public int VirtualTokens(string name)
    {
        lock (_lock)
        {
            return _current.VirtualTokensAt(checked((int)_current.IndexOf(name)));
        }
    }

    public void Add(string name, string peftFolder)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(peftFolder);
        if (!AdapterManifest.IsValidName(name))
            throw new PeftOnnxException($"AddAdapter {name}: '{name}' is not a plain identifier (letters, digits, '_', '-', '.'; not starting with a digit)");
        if (_manifest.Stacks.Count == 0)
            throw new PeftOnnxException($"AddAdapter {name}: {Path.Combine(_dir, AdapterManifest.FileName)} records no stack offsets (written by an older export): export the folder again to add adapters at run time");
        // an export that recorded no prefix stacks holds its prompt-learning adapters' virtual tokens as constants with one
        // row per exported slot: a slot added or recycled would index past them or inherit a removed adapter's prefix
        if (_prefixStacks.Count == 0 && _manifest.Adapters.FirstOrDefault(a => a.VirtualTokens > 0) is { } prompt)
            throw new PeftOnnxException($"AddAdapter {name}: {_dir} holds {prompt.Method} adapter '{prompt.Name}', whose virtual tokens are baked per exported slot by an older export (no prefix stacks in {AdapterManifest.FileName}): export the folder again to add adapters at run time");
        RefuseDuplicate(name, Names);
        PrefixKeyValues? prefix = null;
        AdapterRows rows;
        if (Directory.Exists(peftFolder) && AdapterConfig.Load(peftFolder) is PrefixTuningConfig)
        {
            var stacks = PrefixesNow()
                ?? throw new PeftOnnxException($"AddAdapter {name}: {peftFolder} is a prefix-tuning adapter but {_dir} stacks no prefixes (none of its adapters is a prompt-learning one): export the folder with at least one prefix-tuning, prompt-tuning or p-tuning adapter among --adapter (or with export --prefix-slots) to add prefix-tuning adapters at run time");
            prefix = PeftPrefixReader.Read(name, peftFolder, Model, stacks);
            rows = new AdapterRows(PrefixTuningConfig.Type, 0, new Dictionary<string, StackRow>());
        }
        else rows = PeftAdapterReader.Read(name, peftFolder, _architecture, DimsNow(), BaseWeight);
        lock (_lock)
        {
            RefuseDuplicate(name, _current.Names);
            var old = CurrentStacks();
            int oldSlots = _current.SlotCount;
            int slot = Enumerable.Range(0, oldSlots).FirstOrDefault(k => _current.NameAt(k) == null, oldSlots);
            int slots = Math.Max(oldSlots, slot + 1);
            var names = Enumerable.Range(0, slots).Select(k => k < oldSlots ? _current.NameAt(k) : null).ToArray();
            names[slot] = name;
            var stacks = new Dictionary<string, StackBuffer>(StringComparer.Ordinal);
            foreach (var (stackName, buffer) in old)
            {
                var kind = AdapterStackNames.Parse(stackName)!.Value.Kind;
                if (RowStackGrowth.Handles(_manifest.LoraLayout, kind)) continue;
                rows.Rows.TryGetValue(stackName, out var row);
                stacks[stackName] = StackGrowth.Grow(buffer, kind, slots, oldSlots, slot, row);
            }
            if (_manifest.LoraLayout == LoraStackLayout.Rows) RowStackGrowth.Add(stacks, old, _manifest.RowTableUsers, slots, oldSlots, slot, rows.Rows);
            Publish(new AdapterSlots(names, stacks, CurrentPrefixes()?.Grow(slots, oldSlots, slot, prefix)));
        }
    }

    public void Remove(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        lock (_lock)
        {
            int slot = checked((int)_current.IndexOf(name));
            if (_manifest.Stacks.Count == 0)
                throw new PeftOnnxException($"RemoveAdapter {name}: {Path.Combine(_dir, AdapterManifest.FileName)} records no stack offsets (written by an older export): export the folder again to remove adapters at run time");
            var names = Enumerable.Range(0, _current.SlotCount).Select(_current.NameAt).ToArray();
            names[slot] = null;
            var old = CurrentStacks();
            var stacks = old.Where(s => !RowStackGrowth.Handles(_manifest.LoraLayout, AdapterStackNames.Parse(s.Key)!.Value.Kind)).ToDictionary(s => s.Key,
                s => StackGrowth.Grow(s.Value, AdapterStackNames.Parse(s.Key)!.Value.Kind, _current.SlotCount, _current.SlotCount, slot, null),
                StringComparer.Ordinal);
            if (_manifest.LoraLayout == LoraStackLayout.Rows) RowStackGrowth.Remove(stacks, old, _manifest.RowTableUsers, slot);
            Publish(new AdapterSlots(names, stacks, CurrentPrefixes()?.Grow(_current.SlotCount, _current.SlotCount, slot, null)));
        }
    }

    /// <summary>A module's float32 base weight [in, out] from the data file, null where the manifest records none.</summary>
    private float[]? BaseWeight(string modulePath)
    {
        var tensor = _manifest.BaseWeights.FirstOrDefault(w => w.Name == modulePath + ".weight");
        return tensor == null ? null : StackFile.Read(_dir, tensor);
    }

    private static void RefuseDuplicate(string name, IReadOnlyList<string> names)
    {
        if (names.Contains(name, StringComparer.Ordinal))
            throw new PeftOnnxException($"AddAdapter {name}: an adapter named '{name}' is loaded already (remove it first, or choose another name)");
    }

    /// <summary>Each stack's dims now, as a slot axis then one slot's row shape (<see cref="RowStackGrowth.SlotDims"/>).</summary>
    private Dictionary<string, long[]> DimsNow()
    {
        lock (_lock)
            return (_current.Stacks?.Select(s => (Name: s.Key, s.Value.Dims)) ?? _stacks.Select(s => (s.Name, s.Dims)))
                .ToDictionary(s => s.Name, s => RowStackGrowth.SlotDims(_manifest.LoraLayout, AdapterStackNames.Parse(s.Name)!.Value.Kind, s.Dims, _current.SlotCount),
                    StringComparer.Ordinal);
    }

    /// <summary>The prefix stacks now (read from the data file while the exported state serves); null where the export has none.</summary>
    private PrefixSlots? PrefixesNow()
    {
        lock (_lock) return CurrentPrefixes();
    }

    private PrefixSlots? CurrentPrefixes() =>
        _current.Prefixes ?? (_prefixStacks.Count == 0 || _current.Stacks != null ? null
            : _exportedPrefixes ??= PrefixSlots.Read(_dir, _prefixStacks, _manifest.Adapters.Select(a => a.VirtualTokens).ToArray(), Model.Family.TakesPositionIds));

    /// <summary>The exported prefix stacks, read from the data file once (the first prefix add checks against them, then grows them).</summary>
    private PrefixSlots? _exportedPrefixes;

    private ModelConfig? _model;

    /// <summary>The folder's config.json, read on the first prefix added.</summary>
    private ModelConfig Model => _model ??= ModelConfig.Load(_dir);

    private IReadOnlyDictionary<string, StackBuffer> CurrentStacks()
    {
        if (_current.Stacks is { } stacks) return stacks;
        var read = StackFile.ReadAll(_dir, _stacks);
        foreach (var (name, buffer) in read)
            if (AdapterStackNames.Parse(name) is not { } parsed
                || ((!RowStackGrowth.Handles(_manifest.LoraLayout, parsed.Kind) || parsed.Kind == AdapterStackKind.LoraRows) && buffer.Slots != _current.SlotCount + 1))
                throw new PeftOnnxException($"{Path.Combine(_dir, AdapterManifest.FileName)}: stack '{name}' has {buffer.Slots} slots, expected {_current.SlotCount + 1} (the adapters and the base)");
        return read;
    }

    private void Publish(AdapterSlots next)
    {
        var old = _current;
        _current = next;
        old.Release();
    }

    public void Dispose()
    {
        lock (_lock) _current.Release();
    }
}
