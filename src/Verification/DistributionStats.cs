namespace Peft.Onnx.Verification;

/// <summary>
/// How far the export's next-token distributions are from the adapted model's, beyond the logit differences: the
/// mean KL divergence KL(adapted || export) over the compared positions and, where the batch has labels, each side's
/// perplexity on them (exp of the mean cross-entropy over labels other than -100; decoder-only logits at t predict
/// the label at t + 1, as transformers shifts them). What a quantized export is judged by.
/// </summary>
public sealed record DistributionStats(double KlDivergence, double? AdaptedPerplexity, double? ExportPerplexity)
{
    /// <param name="shape">[batch, length, vocab] of both logit arrays.</param>
    /// <param name="mask">Positions to compare ([batch, length], 0 = skip); null: all.</param>
    /// <param name="labels">[batch, labelLength] with -100 for ignored positions; null: no perplexity.</param>
    /// <param name="shifted">Decoder-only: the logits at t are scored against the label at t + 1.</param>
    public static DistributionStats Compute(float[] adapted, float[] export, long[] shape, long[]? mask, long[]? labels, bool shifted)
    {
        int rows = (int)shape[0], length = (int)shape[1], vocab = (int)shape[2];
        double kl = 0;
        long positions = 0;
        for (int b = 0; b < rows; b++)
            for (int t = 0; t < length; t++)
            {
                if (mask != null && mask[b * length + t] == 0) continue;
                int o = (b * length + t) * vocab;
                var p = adapted.AsSpan(o, vocab);
                var q = export.AsSpan(o, vocab);
                double lp = LogSumExp(p), lq = LogSumExp(q), sum = 0;
                for (int v = 0; v < vocab; v++)
                {
                    double logP = p[v] - lp;
                    sum += Math.Exp(logP) * (logP - (q[v] - lq));
                }
                kl += sum;
                positions++;
            }
        bool scored = labels != null && labels.Length % rows == 0 && labels.Length / rows == length;
        return new DistributionStats(positions == 0 ? 0 : kl / positions,
            scored ? Perplexity(adapted, labels!, rows, length, vocab, shifted) : null,
            scored ? Perplexity(export, labels!, rows, length, vocab, shifted) : null);
    }

    /// <summary>exp(mean -log softmax(logits)[label]) over the labels that count; null when none does.</summary>
    public static double? Perplexity(float[] logits, long[] labels, int rows, int length, int vocab, bool shifted)
    {
        double nll = 0;
        long count = 0;
        for (int b = 0; b < rows; b++)
            for (int t = 0; t < length; t++)
            {
                int target = shifted ? t + 1 : t;
                if (target >= length) continue;
                long label = labels[b * length + target];
                if (label < 0) continue;
                var row = logits.AsSpan((b * length + t) * vocab, vocab);
                nll += LogSumExp(row) - row[(int)label];
                count++;
            }
        return count == 0 ? null : Math.Exp(nll / count);
    }

    private static double LogSumExp(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in x) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }
}
