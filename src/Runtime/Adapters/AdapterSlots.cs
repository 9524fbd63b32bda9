using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime.Adapters;

/// <summary>
/// One immutable state of a multi-adapter model's adapters: which name holds which slot of the stacks, and (once an
/// adapter was added or removed at run time) the stacks' values, fed as graph inputs over the exported defaults. A
/// generator leases the state current when it starts and binds its tensors for its whole run, so adding or removing an
/// adapter never touches a request in flight: the next state is a new copy, and this one's native tensors are freed
/// when its last lease ends.
/// </summary>
internal sealed class AdapterSlots
{
    private readonly string?[] _names;
    private readonly OrtValue[] _values;
    private int _refs = 1;

    /// <param name="names">Per slot the adapter's name, null for a free slot (the base slot is not listed).</param>
    /// <param name="stacks">The stacks to feed; null: the graph's own defaults (the exported state).</param>
    /// <param name="prefixes">The prefix stacks to feed (with <paramref name="stacks"/>), null where the graph has none or its defaults serve.</param>
    /// <param name="virtualTokens">Per slot its virtual tokens while the defaults serve (the exported adapters'); else <paramref name="prefixes"/> knows them.</param>
    public AdapterSlots(string?[] names, IReadOnlyDictionary<string, StackBuffer>? stacks, PrefixSlots? prefixes = null, IReadOnlyList<int>? virtualTokens = null)
    {
        _names = names;
        Stacks = stacks;
        Prefixes = prefixes;
        _virtualTokens = virtualTokens;
        var fed = stacks?.OrderBy(s => s.Key, StringComparer.Ordinal).ToArray() ?? [];
        var prefixInputs = prefixes?.CreateInputs().ToArray() ?? [];
        InputNames = [.. fed.Select(s => s.Key), .. prefixInputs.Select(p => p.Name)];
        _values = [.. fed.Select(s => OrtValue.CreateTensorValueFromMemory(s.Value.Values, s.Value.Dims)), .. prefixInputs.Select(p => p.Value)];
    }

    private readonly IReadOnlyList<int>? _virtualTokens;

    /// <summary>The prefix stacks' state, null while the graph's defaults serve or the graph has none.</summary>
    public PrefixSlots? Prefixes { get; }

    /// <summary>The virtual tokens slot <paramref name="slot"/>'s adapter prepends (0 for adapters without).</summary>
    public int VirtualTokensAt(int slot) =>
        Prefixes?.LengthAt(slot) ?? (_virtualTokens != null && slot < _virtualTokens.Count ? _virtualTokens[slot] : 0);

    /// <summary>The adapters, in slot order.</summary>
    public IReadOnlyList<string> Names => _names.Where(n => n != null).Select(n => n!).ToArray();

    /// <summary>Slots of the stacks, free ones included (the base slot not counted).</summary>
    public int SlotCount => _names.Length;

    internal string? NameAt(int slot) => _names[slot];

    /// <summary>The stacks' values, null while the graph's defaults serve.</summary>
    public IReadOnlyDictionary<string, StackBuffer>? Stacks { get; }

    /// <summary>Graph inputs to bind (stack names) with <see cref="InputValues"/>, in the same order; empty for the exported state.</summary>
    public IReadOnlyList<string> InputNames { get; }

    public IReadOnlyList<OrtValue> InputValues => _values;

    /// <summary>The adapter_index of <paramref name="name"/> (null = the base: -1); an unknown name is refused, listing the known ones.</summary>
    public long IndexOf(string? name)
    {
        if (name == null) return -1;
        int slot = Array.IndexOf(_names, name);
        if (slot >= 0) return slot;
        var known = Names.Count == 0 ? "none" : string.Join(", ", Names);
        throw new PeftOnnxException($"unknown adapter '{name}' (this export has: {known}; omit the adapter for the base)");
    }

    /// <summary>Takes a lease; false when this state was already retired and freed.</summary>
    public bool TryAcquire()
    {
        while (true)
        {
            int refs = Volatile.Read(ref _refs);
            if (refs == 0) return false;
            if (Interlocked.CompareExchange(ref _refs, refs + 1, refs) == refs) return true;
        }
    }

    /// <summary>Ends a lease (or the registry's own reference); the last one frees the native tensors.</summary>
    public void Release()
    {
        int refs = Interlocked.Decrement(ref _refs);
        if (refs < 0) throw new InvalidOperationException("adapter state released more often than acquired");
        if (refs == 0) foreach (var v in _values) v.Dispose();
    }
}
