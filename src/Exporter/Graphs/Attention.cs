using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>Attention pieces shared by the decoder graphs: masks, ALiBi, the KV-cache concat, SDPA.</summary>
public static class Attention
{
    /// <summary>
    /// Which keys each query may see, as bool [batch, 1, seq, total]: key j is visible to query i when
    /// j &lt;= past + i (causal, past = total - seq) and attention_mask[b, j] = 1 (padding). Equivalent to
    /// transformers' _make_causal_mask | _expand_mask (inverted), also when seq = 1.
    /// </summary>
    public static string CausalPaddingMask(GraphBuilder g, string inputIds, string attentionMask)
    {
        using var _ = g.Scope("causal_mask");
        var seq = g.Shape(inputIds, 1, 2);
        var total = g.Shape(attentionMask, 1, 2);
        var past = g.Squeeze(g.Sub(total, seq), [0]);
        var totalScalar = g.Squeeze(total, [0]);
        var one = g.Constant(1L);
        var queryPositions = g.Range(past, totalScalar, one);             // [seq]: past .. total-1
        var keyPositions = g.Range(g.Constant(0L), totalScalar, one);     // [total]
        var causal = g.LessOrEqual(g.Unsqueeze(keyPositions, [0]), g.Unsqueeze(queryPositions, [1])); // [seq, total]
        var notPadding = g.Cast(g.Unsqueeze(attentionMask, [1, 2]), ElementType.Bool);             // [batch, 1, 1, total]
        return g.And(notPadding, causal);
    }

    /// <summary>
    /// ALiBi head slopes exactly as transformers' build_alibi_tensor: powers of 2^(-8/n) for the largest
    /// power of two n &lt;= heads, then every other power of 2^(-4/n) for the remaining heads.
    /// </summary>
    public static float[] AlibiSlopes(int numHeads)
    {
        int closest = 1 << (int)Math.Floor(Math.Log2(numHeads));
        var baseValue = (float)Math.Pow(2, -Math.Pow(2, -(Math.Log2(closest) - 3)));
        var slopes = new List<float>();
        for (int p = 1; p <= closest; p++) slopes.Add(MathF.Pow(baseValue, p));
        if (closest != numHeads)
        {
            var extraBase = (float)Math.Pow(2, -Math.Pow(2, -(Math.Log2(2 * closest) - 3)));
            int remaining = Math.Min(closest, numHeads - closest);
            for (int p = 1; p < 1 + 2 * remaining; p += 2) slopes.Add(MathF.Pow(extraBase, p));
        }
        return [.. slopes];
    }

    /// <summary>
    /// ALiBi bias float [batch, heads, 1, total] from the attention mask: slope[h] * position, with positions
    /// (cumsum(mask) - 1) * mask as in build_alibi_tensor (padding does not advance the position).
    /// </summary>
    public static string Alibi(GraphBuilder g, string attentionMask, int numHeads)
    {
        using var _ = g.Scope("alibi");
        var positions = g.Mul(g.Sub(g.CumSum(attentionMask, 1), g.Constant(1L)), attentionMask);  // [batch, total]
        var positionsF = g.Unsqueeze(g.Cast(positions, ElementType.Float), [1, 2]);                // [batch, 1, 1, total]
        var slopes = g.Constant(InitializerData.FromFloats(AlibiSlopes(numHeads), 1, numHeads, 1, 1));
        return g.Mul(slopes, positionsF);
    }

    /// <summary>Appends this step's keys or values [batch, heads, seq, head_dim] to the cache along the sequence axis.</summary>
    public static string AppendToCache(GraphBuilder g, string past, string current, string present, string name) =>
        g.Concat(2, [past, current], name: name, output: present);

    /// <summary>
    /// softmax(q @ k^T * scale + bias, masked) @ v over [batch, heads, *, head_dim]. Masked scores are set to
    /// float.MinValue (torch.finfo(float32).min, like masked_fill), so a fully masked row is uniform, not NaN.
    /// With a <paramref name="prefix"/>, the keys are the prefix's and then k's (see <see cref="Scores"/>).
    /// </summary>
    public static string ScaledDotProduct(GraphBuilder g, string q, string k, string v, float scale, string? bias, string allowed, PrefixKv? prefix = null)
    {
        var scores = Scores(g, q, k, prefix, s => g.Mul(s, g.Constant(scale)));
        if (bias != null) scores = g.Add(scores, bias);
        scores = g.Where(allowed, scores, g.Constant(float.MinValue));
        var probs = g.Softmax(scores, -1);
        return Context(g, probs, v, prefix);
    }

    /// <summary>
    /// The additive bias of <see cref="MultiHead"/>: <paramref name="bias"/> (ALiBi [batch, heads, 1, total], or 0)
    /// where <paramref name="allowed"/>, float.MinValue elsewhere, as [batch, heads or 1, seq, total]. Built once per
    /// graph and shared by every layer; adding it to a score gives what masking the (biased) score does (|score| is far
    /// below float.MinValue's spacing, so a masked score is float.MinValue exactly).
    /// </summary>
    public static string MaskedBias(GraphBuilder g, string bias, string allowed)
    {
        using var _ = g.Scope("attention_bias");
        return g.Where(allowed, bias, g.Constant(float.MinValue));
    }

    /// <summary>
    /// One com.microsoft MultiHeadAttention node: softmax(q @ k^T * scale + <paramref name="bias"/>) @ v over q, k, v
    /// [batch, seq, heads * head_dim] (this step's), with the cache [batch, heads, past, head_dim] appended to by the
    /// node itself (present = [past, k]); returns [batch, seq, heads * head_dim], heads already merged. The same
    /// arithmetic as <see cref="ScaledDotProduct"/> with <see cref="MaskedBias"/> in about a tenth of the nodes:
    /// ONNX Runtime's per-node cost is a large part of a small decode step.
    /// </summary>
    public static string MultiHead(GraphBuilder g, string q, string k, string v, string bias, string pastKey, string pastValue,
        int heads, float scale, string presentKey, string presentValue) =>
        g.Node("MultiHeadAttention", [q, k, v, "", "", bias, pastKey, pastValue], outputs: [$"{g.CurrentScope}/MultiHeadAttention/output_0", presentKey, presentValue],
            domain: "com.microsoft", attributes: [Attr.Int("num_heads", heads), Attr.Float("scale", scale)])[0];

    /// <summary>[batch, heads, seq, head_dim] -> [batch, seq, heads * head_dim].</summary>
    public static string MergeHeads(GraphBuilder g, string context, long hiddenSize) =>
        g.Reshape(g.Transpose(context, [0, 2, 1, 3]), [0, 0, hiddenSize]);

    /// <summary>[batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim] (the cache layout).</summary>
    public static string SplitHeads(GraphBuilder g, string x, long heads, long headDim, string name)
    {
        using var _ = g.Scope(name);
        return g.Transpose(g.Reshape(x, [0, 0, heads, headDim]), [0, 2, 1, 3]);
    }

    /// <summary>
    /// Attention scores q @ k^T over [batch, heads, *, head_dim], each product passed through the family's elementwise
    /// <paramref name="scale"/> (none: raw scores). With a <paramref name="prefix"/>: [scale(q @ prefix_k^T),
    /// scale(q @ k^T)] along the key axis, the scores a concatenation of the prefix's keys before k would give,
    /// without copying k; scaling each product before the concat lets ONNX Runtime fold it into the MatMul as in
    /// the base graph.
    /// </summary>
    public static string Scores(GraphBuilder g, string q, string k, PrefixKv? prefix = null, Func<string, string>? scale = null)
    {
        string Scaled(string scores) => scale == null ? scores : scale(scores);
        var scores = Scaled(g.MatMul(q, g.Transpose(k, [0, 1, 3, 2])));
        if (prefix == null) return scores;
        using var _ = g.Scope("prompt");
        return g.Concat(-1, [Scaled(g.MatMul(q, prefix.KeysTransposed)), scores]);
    }

    /// <summary>
    /// probs @ v over [batch, heads, *, keys]. With a <paramref name="prefix"/> the first Length keys are the
    /// prefix's: probs[..., :Length] @ prefix_v + probs[..., Length:] @ v.
    /// </summary>
    public static string Context(GraphBuilder g, string probs, string v, PrefixKv? prefix = null)
    {
        if (prefix == null) return g.MatMul(probs, v);
        string prefixProbs, cacheProbs;
        using (g.Scope("prompt"))
        {
            var length = prefix.LengthTensor ?? g.Ints(prefix.Length);
            prefixProbs = g.Op("Slice", [probs, g.Ints(0), length, g.Ints(-1)]);
            cacheProbs = g.Op("Slice", [probs, length, g.Ints(long.MaxValue), g.Ints(-1)]);
        }
        var context = g.MatMul(cacheProbs, v);
        using (g.Scope("prompt")) return g.Add(g.MatMul(prefixProbs, prefix.Values), context);
    }

    /// <summary>
    /// softmax(scores, masked) @ v: scores where <paramref name="allowed"/> is false become float.MinValue
    /// (torch.finfo(float32).min) before the softmax. On every row with a visible key this equals transformers'
    /// additive masks (finfo.min added, clamped or not), since masked keys get exactly zero weight. With a
    /// <paramref name="prefix"/>, the scores cover its keys first (<see cref="Scores"/>).
    /// </summary>
    public static string MaskedSoftmaxContext(GraphBuilder g, string scores, string v, string allowed, PrefixKv? prefix = null)
    {
        var masked = g.Where(allowed, scores, g.Constant(float.MinValue));
        return Context(g, g.Softmax(masked, -1), v, prefix);
    }

    /// <summary>
    /// repeat_kv for grouped-query attention: [batch, kv_heads, seq, head_dim] -> [batch, kv_heads * groups, seq,
    /// head_dim], query head h reading kv head h / groups (the cache keeps the kv heads un-repeated).
    /// </summary>
    public static string RepeatKv(GraphBuilder g, string x, long kvHeads, long groups, long headDim, string name)
    {
        if (groups == 1) return x;
        using var _ = g.Scope(name);
        var expanded = g.Op("Expand", [g.Unsqueeze(x, [2]), g.Ints(1, 1, groups, 1, 1)]);   // [B, kv, groups, S, d]
        return g.Reshape(expanded, [0, kvHeads * groups, -1, headDim]);
    }

    /// <summary>
    /// The rotary inverse frequencies as LlamaRotaryEmbedding builds them in float32:
    /// 1 / theta^(arange(0, dim, 2) / dim).
    /// </summary>
    public static float[] RotaryInverseFrequencies(int dim, double theta)
    {
        var result = new float[dim / 2];
        for (int i = 0; i < result.Length; i++)
        {
            float exponent = (float)(2 * i) / dim;
            result[i] = 1f / MathF.Pow((float)theta, exponent);
        }
        return result;
    }

    /// <summary>
    /// RoPE cos and sin [batch, 1, seq, head_dim] for int64 positions [batch, seq]: angles = position * inv_freq
    /// (float32, one product each, as the cached table is built), emb = cat(angles, angles). Equal to indexing
    /// transformers' cos_cached/sin_cached by the positions, with no table and no length limit.
    /// </summary>
    public static (string Cos, string Sin) RotaryCosSin(GraphBuilder g, string positionIds, float[] inverseFrequencies)
    {
        using var _ = g.Scope("rotary_emb");
        var positions = g.Unsqueeze(g.Cast(positionIds, ElementType.Float), [2]);                              // [B, T, 1]
        var invFreq = g.Constant(InitializerData.FromFloats(inverseFrequencies, inverseFrequencies.Length));    // [d/2]
        var angles = g.Mul(positions, invFreq);                                                                // [B, T, d/2]
        var emb = g.Unsqueeze(g.Concat(-1, [angles, angles]), [1]);                                            // [B, 1, T, d]
        return (g.Op("Cos", [emb]), g.Op("Sin", [emb]));
    }

    /// <summary>apply_rotary_pos_emb for one of q, k [batch, heads, seq, head_dim]: x * cos + rotate_half(x) * sin.</summary>
    public static string ApplyRotary(GraphBuilder g, string x, string cos, string sin, string name)
    {
        using var _ = g.Scope(name);
        var halves = g.Split(x, -1, 2);
        var rotated = g.Concat(-1, [g.Op("Neg", [halves[1]]), halves[0]]);   // rotate_half: (-x2, x1)
        return g.Add(g.Mul(x, cos), g.Mul(rotated, sin));
    }
}
