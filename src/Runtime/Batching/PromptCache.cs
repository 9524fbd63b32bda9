namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// Prefilled prompts by exact key, least recently used first out, bounded in bytes: a continuous batch row whose prompt
/// (and adapter) equals a cached one skips its prefill run and copies the cached keys/values and first-token logits.
/// Exact, not approximate: only an equal key hits. Used from the batch's thread; the counters may be read from any.
/// </summary>
public sealed class PromptCache
{
    private readonly Dictionary<PromptKey, LinkedListNode<(PromptKey Key, PromptCacheEntry Entry)>> _entries = [];
    // most recently used first
    private readonly LinkedList<(PromptKey Key, PromptCacheEntry Entry)> _order = new();
    private long _bytes, _hits, _misses, _evictions;

    /// <param name="capacityBytes">The most bytes the entries hold together (at least 1).</param>
    public PromptCache(long capacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBytes, 1);
        CapacityBytes = capacityBytes;
    }

    public long CapacityBytes { get; }
    public long Bytes => Interlocked.Read(ref _bytes);
    public long Hits => Interlocked.Read(ref _hits);
    public long Misses => Interlocked.Read(ref _misses);
    public long Evictions => Interlocked.Read(ref _evictions);
    public int Count => _entries.Count;

    internal PromptCacheEntry? Find(PromptKey key)
    {
        if (!_entries.TryGetValue(key, out var node))
        {
            Interlocked.Increment(ref _misses);
            return null;
        }
        _order.Remove(node);
        _order.AddFirst(node);
        Interlocked.Increment(ref _hits);
        return node.Value.Entry;
    }

    /// <summary>Adds an entry (one larger than the whole bound is not kept), evicting the least recently used ones until it fits.</summary>
    internal void Add(PromptKey key, PromptCacheEntry entry)
    {
        if (entry.Bytes > CapacityBytes || _entries.ContainsKey(key)) return;
        while (_bytes + entry.Bytes > CapacityBytes)
        {
            var last = _order.Last!;
            _order.RemoveLast();
            _entries.Remove(last.Value.Key);
            Interlocked.Add(ref _bytes, -last.Value.Entry.Bytes);
            Interlocked.Increment(ref _evictions);
        }
        _entries.Add(key, _order.AddFirst((key, entry)));
        Interlocked.Add(ref _bytes, entry.Bytes);
    }

    /// <summary>Drops every entry (the adapters they were computed with changed).</summary>
    internal void Clear()
    {
        _entries.Clear();
        _order.Clear();
        Interlocked.Exchange(ref _bytes, 0);
    }
}
