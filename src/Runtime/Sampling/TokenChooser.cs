namespace Peft.Onnx.Runtime.Sampling;

/// <summary>
/// Picks the next token of one row from its last-position logits, as transformers 4.33's generate does:
/// repetition penalty (over every id in the row, padding included), then greedy arg-max, or temperature,
/// top-k and top-p warpers followed by sampling from the softmax. One instance per generation (owns the sampler).
/// </summary>
internal sealed class TokenChooser
{
    private readonly ResolvedOptions _o;
    private readonly Xoshiro _rng;
    private float[] _scores = [];
    private int[] _order = [];

    public TokenChooser(ResolvedOptions options)
    {
        _o = options;
        _rng = new Xoshiro(options.Seed);
    }

    /// <summary>The next token for a row whose tokens so far are <paramref name="sequence"/>.</summary>
    public int Choose(ReadOnlySpan<float> logits, List<int> sequence)
    {
        bool penalize = _o.RepetitionPenalty != 1.0;
        if (!penalize && !_o.DoSample) return ArgMax(logits);

        if (_scores.Length != logits.Length) _scores = new float[logits.Length];
        var scores = _scores.AsSpan();
        logits.CopyTo(scores);
        if (penalize)
        {
            float p = (float)_o.RepetitionPenalty;
            var seen = new HashSet<int>();
            foreach (var id in sequence)
            {
                if ((uint)id >= (uint)scores.Length || !seen.Add(id)) continue;
                var s = logits[id];
                scores[id] = s < 0 ? s * p : s / p;
            }
        }
        if (!_o.DoSample) return ArgMax(scores);

        if (_o.Temperature != 1.0)
        {
            float t = (float)_o.Temperature;
            for (int i = 0; i < scores.Length; i++) scores[i] /= t;
        }
        if (_o.TopK > 0) TopK(scores, Math.Min(_o.TopK, scores.Length));
        if (_o.TopP < 1.0) TopP(scores, _o.TopP);
        return Sample(scores);
    }

    /// <summary>The first index of the largest value (greedy choice; ties go to the lower id, as torch.argmax).</summary>
    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        float max = values[0];
        for (int i = 1; i < values.Length; i++)
            if (values[i] > max) { max = values[i]; best = i; }
        return best;
    }

    /// <summary>TopKLogitsWarper: scores below the k-th largest become -inf (ties with it are kept).</summary>
    private void TopK(Span<float> scores, int k)
    {
        if (k >= scores.Length) return;
        var copy = scores.ToArray();
        Array.Sort(copy);
        float kth = copy[copy.Length - k];
        for (int i = 0; i < scores.Length; i++) if (scores[i] < kth) scores[i] = float.NegativeInfinity;
    }

    /// <summary>
    /// TopPLogitsWarper: sort ascending, cumulative softmax; tokens whose cumulative probability is &lt;= 1 - p are
    /// removed, the most likely token is always kept.
    /// </summary>
    private void TopP(Span<float> scores, double topP)
    {
        int n = scores.Length;
        if (_order.Length != n) _order = new int[n];
        var order = _order;
        for (int i = 0; i < n; i++) order[i] = i;
        var keys = scores.ToArray();
        Array.Sort(keys, order);
        float max = keys[n - 1];
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.Exp(keys[i] - max);
        double cumulative = 0;
        for (int i = 0; i < n - 1; i++)
        {
            cumulative += Math.Exp(keys[i] - max) / sum;
            if (cumulative <= 1 - topP) scores[order[i]] = float.NegativeInfinity;
        }
    }

    private int Sample(ReadOnlySpan<float> scores)
    {
        float max = float.NegativeInfinity;
        foreach (var s in scores) if (s > max) max = s;
        double sum = 0;
        foreach (var s in scores) sum += s == float.NegativeInfinity ? 0 : Math.Exp(s - max);
        double u = _rng.NextDouble() * sum;
        int last = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] == float.NegativeInfinity) continue;
            last = i;
            u -= Math.Exp(scores[i] - max);
            if (u < 0) return i;
        }
        return last;
    }
}
