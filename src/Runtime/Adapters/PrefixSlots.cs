using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Peft;

namespace Peft.Onnx.Runtime.Adapters;

/// <summary>
/// The stacked prefixes of a decoder-only multi-adapter export in one adapter state (<see cref="PrefixStackNames"/>): per
/// layer the keys transposed [slots + 1, query_heads, head_dim, Length] and the values [slots + 1, query_heads, Length,
/// head_dim], each slot's prefix at the back with zeros in front, and per slot its prefix length (0 for adapters without
/// virtual tokens, free slots and the base slot, last). The per-slot mask and position offset the graph takes are derived
/// from the lengths, as the exporter writes them. Immutable: an add or remove makes a grown copy.
/// </summary>
internal sealed class PrefixSlots
{
    private readonly float[][] _keys;
    private readonly float[][] _values;
    private readonly int[] _lengths;

    private PrefixSlots(float[][] keys, float[][] values, int[] lengths, int queryHeads, int headDim, int length, bool positionOffset)
    {
        _positionOffset = positionOffset;
        _keys = keys;
        _values = values;
        _lengths = lengths;
        QueryHeads = queryHeads;
        HeadDim = headDim;
        Length = length;
    }

    /// <summary>Whether the graph takes the position offsets (families with position_ids; the others derive positions from the mask).</summary>
    private readonly bool _positionOffset;

    public int QueryHeads { get; }
    public int HeadDim { get; }

    /// <summary>The prefix length every row attends to (the longest slot's; never shrinks).</summary>
    public int Length { get; }

    public int NumLayers => _keys.Length;

    /// <summary>The virtual tokens slot <paramref name="slot"/> prepends.</summary>
    public int LengthAt(int slot) => _lengths[slot];

    /// <summary>
    /// The exported state: the stacks from the data file (<paramref name="stacks"/>: the manifest's prefix entries) and
    /// each exported adapter's virtual tokens; <paramref name="positionOffset"/>: the family takes position_ids.
    /// </summary>
    public static PrefixSlots Read(string dir, IReadOnlyList<AdapterStackTensor> stacks, IReadOnlyList<int> virtualTokens, bool positionOffset)
    {
        var where = Path.Combine(dir, AdapterManifest.FileName);
        var buffers = StackFile.ReadAll(dir, stacks);
        int layers = stacks.Count / 2;
        var keys = new float[layers][];
        var values = new float[layers][];
        long[]? keyDims = null;
        for (int i = 0; i < layers; i++)
        {
            if (!buffers.TryGetValue(PrefixStackNames.Key(i), out var k) || !buffers.TryGetValue(PrefixStackNames.Value(i), out var v))
                throw new PeftOnnxException($"{where}: the prefix stacks of layer {i} ('{PrefixStackNames.Key(i)}', '{PrefixStackNames.Value(i)}') are not both recorded");
            keyDims ??= k.Dims;
            long[] valueDims = [keyDims[0], keyDims[1], keyDims[3], keyDims[2]];
            if (k.Dims.Length != 4 || !k.Dims.SequenceEqual(keyDims) || !v.Dims.SequenceEqual(valueDims))
                throw new PeftOnnxException($"{where}: prefix stacks '{PrefixStackNames.Key(i)}' [{string.Join(", ", k.Dims)}] and '{PrefixStackNames.Value(i)}' [{string.Join(", ", v.Dims)}] do not match layer 0's [{string.Join(", ", keyDims)}]");
            keys[i] = k.Values;
            values[i] = v.Values;
        }
        if (keyDims == null || stacks.Count != 2 * layers) throw new PeftOnnxException($"{where}: {stacks.Count} prefix stacks, expected a key and a value per layer");
        if (keyDims[0] != virtualTokens.Count + 1)
            throw new PeftOnnxException($"{where}: prefix stack '{PrefixStackNames.Key(0)}' has {keyDims[0]} slots, expected {virtualTokens.Count + 1} (the adapters and the base)");
        int length = checked((int)keyDims[3]);
        if (virtualTokens.Any(t => t > length))
            throw new PeftOnnxException($"{where}: an adapter has {virtualTokens.Max()} virtual tokens but the prefix stacks hold {length}");
        return new PrefixSlots(keys, values, [.. virtualTokens, 0], checked((int)keyDims[1]), checked((int)keyDims[2]), length, positionOffset);
    }

    /// <summary>
    /// A copy with <paramref name="slots"/> adapter slots (+ the base slot, empty): the old slots kept (re-padded in
    /// front when the length grows), slot <paramref name="slot"/> emptied and filled with <paramref name="prefix"/> when
    /// given (its kv heads repeated to the query heads, as the exporter stacks them).
    /// </summary>
    public PrefixSlots Grow(int slots, int oldSlots, int slot, PrefixKeyValues? prefix)
    {
        int length = Math.Max(Length, prefix?.Length ?? 0), shift = length - Length;
        int rows = QueryHeads * HeadDim, per = rows * length, oldPer = rows * Length;
        var keys = new float[NumLayers][];
        var values = new float[NumLayers][];
        var lengths = new int[slots + 1];
        for (int k = 0; k < oldSlots; k++)
            if (k != slot) lengths[k] = _lengths[k];
        if (prefix != null) lengths[slot] = prefix.Length;
        int groups = prefix == null ? 1 : QueryHeads / prefix.Heads;
        for (int i = 0; i < NumLayers; i++)
        {
            var key = new float[(long)(slots + 1) * per];
            var value = new float[(long)(slots + 1) * per];
            for (int k = 0; k < oldSlots; k++)
            {
                if (k == slot) continue;
                // keys: each (head, d) row of Length tokens; values: each head's block of Length x head_dim
                for (int r = 0; r < rows; r++)
                    Array.Copy(_keys[i], (long)k * oldPer + (long)r * Length, key, (long)k * per + (long)r * length + shift, Length);
                for (int h = 0; h < QueryHeads; h++)
                    Array.Copy(_values[i], (long)k * oldPer + (long)h * Length * HeadDim, value, (long)k * per + ((long)h * length + shift) * HeadDim, Length * HeadDim);
            }
            if (prefix != null)
            {
                int n = prefix.Length, pad = length - n;
                for (int h = 0; h < QueryHeads; h++)
                {
                    var kv = h / groups;
                    for (int t = 0; t < n; t++)
                        for (int d = 0; d < HeadDim; d++)
                        {
                            key[(long)slot * per + ((long)h * HeadDim + d) * length + pad + t] = prefix.Keys[i][((long)kv * n + t) * HeadDim + d];
                            value[(long)slot * per + ((long)h * length + pad + t) * HeadDim + d] = prefix.Values[i][((long)kv * n + t) * HeadDim + d];
                        }
                }
            }
            keys[i] = key;
            values[i] = value;
        }
        return new PrefixSlots(keys, values, lengths, QueryHeads, HeadDim, length, _positionOffset);
    }

    /// <summary>The graph inputs of this state, new native tensors over its arrays (the caller disposes them).</summary>
    public IEnumerable<(string Name, OrtValue Value)> CreateInputs()
    {
        int slots = _lengths.Length;
        for (int i = 0; i < NumLayers; i++)
        {
            yield return (PrefixStackNames.Key(i), OrtValue.CreateTensorValueFromMemory(_keys[i], [slots, QueryHeads, HeadDim, Length]));
            yield return (PrefixStackNames.Value(i), OrtValue.CreateTensorValueFromMemory(_values[i], [slots, QueryHeads, Length, HeadDim]));
        }
        var mask = new long[slots * Length];
        for (int k = 0; k < slots; k++) Array.Fill(mask, 1L, (k + 1) * Length - _lengths[k], _lengths[k]);
        yield return (PrefixStackNames.Mask, OrtValue.CreateTensorValueFromMemory(mask, [slots, Length]));
        if (_positionOffset) yield return (PrefixStackNames.PositionOffset, OrtValue.CreateTensorValueFromMemory(_lengths.Select(l => (long)l).ToArray(), [slots]));
    }
}
