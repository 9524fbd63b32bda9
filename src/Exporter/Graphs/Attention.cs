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
    /// </summary>
    public static string ScaledDotProduct(GraphBuilder g, string q, string k, string v, float scale, string? bias, string allowed)
    {
        var scores = g.Mul(g.MatMul(q, g.Transpose(k, [0, 1, 3, 2])), g.Constant(scale));
        if (bias != null) scores = g.Add(scores, bias);
        scores = g.Where(allowed, scores, g.Constant(float.MinValue));
        var probs = g.Softmax(scores, -1);
        return g.MatMul(probs, v);
    }

    /// <summary>[batch, heads, seq, head_dim] -> [batch, seq, heads * head_dim].</summary>
    public static string MergeHeads(GraphBuilder g, string context, long hiddenSize) =>
        g.Reshape(g.Transpose(context, [0, 2, 1, 3]), [0, 0, hiddenSize]);
}
