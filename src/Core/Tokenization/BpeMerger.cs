namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// The merge loop shared by sentencepiece BPE and tokenizer.json BPE: repeatedly join the adjacent pair of symbols
/// with the highest priority, ties going to the leftmost pair (both sentencepiece's bpe_model.cc and Hugging Face's
/// Word::merge_all order their queues this way). Merges are re-validated when popped, because earlier merges can
/// consume either side.
/// </summary>
internal static class BpeMerger
{
    /// <summary>Returns the priority of joining <c>left</c> and <c>right</c> (higher first), or null when they may not join.</summary>
    public delegate double? PairPriority(string left, string right);

    private static readonly Comparer<(double Priority, int Left)> QueueOrder =
        Comparer<(double Priority, int Left)>.Create((a, b) =>
            a.Priority != b.Priority ? b.Priority.CompareTo(a.Priority) : a.Left.CompareTo(b.Left));

    /// <param name="symbols">Initial symbols, left to right.</param>
    /// <param name="frozen">Symbols that never join (user-defined pieces, byte fallbacks); null for none.</param>
    /// <param name="priority">Which pairs may join and in what order.</param>
    /// <param name="onMerge">Told about every join (left, right, joined), e.g. to undo it later.</param>
    public static List<string> Merge(IReadOnlyList<string> symbols, IReadOnlyList<bool>? frozen, PairPriority priority,
        Action<string, string, string>? onMerge = null)
    {
        int n = symbols.Count;
        if (n < 2) return [.. symbols];
        var text = new string?[n];
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++)
        {
            text[i] = symbols[i];
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }

        var queue = new PriorityQueue<(int Left, int Right, int LeftLength, int RightLength), (double, int)>(QueueOrder);
        void Offer(int left, int right)
        {
            if (left < 0 || right < 0) return;
            if (frozen != null && (frozen[left] || frozen[right])) return;
            if (priority(text[left]!, text[right]!) is not double p) return;
            queue.Enqueue((left, right, text[left]!.Length, text[right]!.Length), (p, left));
        }

        for (int i = 1; i < n; i++) Offer(i - 1, i);

        while (queue.TryDequeue(out var pair, out _))
        {
            // Symbols only grow, so unchanged lengths and adjacency mean the queued pair is still current.
            var left = text[pair.Left];
            var right = text[pair.Right];
            if (left == null || right == null || next[pair.Left] != pair.Right ||
                left.Length != pair.LeftLength || right.Length != pair.RightLength) continue;

            var joined = left + right;
            onMerge?.Invoke(left, right, joined);
            text[pair.Left] = joined;
            text[pair.Right] = null;
            next[pair.Left] = next[pair.Right];
            if (next[pair.Right] >= 0) prev[next[pair.Right]] = pair.Left;
            Offer(prev[pair.Left], pair.Left);
            Offer(pair.Left, next[pair.Left]);
        }

        var result = new List<string>();
        for (int i = 0; i >= 0; i = next[i]) result.Add(text[i]!);
        return result;
    }
}
