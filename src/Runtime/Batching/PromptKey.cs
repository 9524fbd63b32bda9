namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// What a prompt's prefill depends on: the row's adapter (index into the batch's adapter state, -1 the base) and its
/// exact token ids and 0/1 mask. Two rows with equal keys get the same cache and first-token logits.
/// </summary>
internal sealed class PromptKey : IEquatable<PromptKey>
{
    private readonly int _hash;

    public PromptKey(long adapterIndex, long[] ids, long[] mask)
    {
        AdapterIndex = adapterIndex;
        Ids = ids;
        Mask = mask;
        var hash = new HashCode();
        hash.Add(adapterIndex);
        foreach (var id in ids) hash.Add(id);
        foreach (var m in mask) hash.Add(m);
        _hash = hash.ToHashCode();
    }

    public long AdapterIndex { get; }
    public long[] Ids { get; }
    public long[] Mask { get; }

    public bool Equals(PromptKey? other) =>
        other != null && _hash == other._hash && AdapterIndex == other.AdapterIndex
        && Ids.AsSpan().SequenceEqual(other.Ids) && Mask.AsSpan().SequenceEqual(other.Mask);

    public override bool Equals(object? obj) => Equals(obj as PromptKey);
    public override int GetHashCode() => _hash;
}
