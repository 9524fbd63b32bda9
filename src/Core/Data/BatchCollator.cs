namespace Peft.Onnx.Core.Data;

/// <summary>
/// The guides' collation: causal batches LEFT-padded to their longest example (pad id, mask 0, labels -100);
/// seq2seq inputs RIGHT-padded (pad id, mask 0) and labels right-padded with -100.
/// </summary>
public static class BatchCollator
{
    public static PaddedBatch Collate(IReadOnlyList<Example> examples, TaskKind task, long pad)
    {
        if (examples.Count == 0) throw new ArgumentException("empty batch", nameof(examples));
        int b = examples.Count;
        if (task == TaskKind.CausalLm)
        {
            int t = examples.Max(e => e.InputIds.Length);
            var ids = new long[b * t];
            var mask = new long[b * t];
            var labels = new long[b * t];
            for (int r = 0; r < b; r++)
            {
                var e = examples[r];
                int padding = t - e.InputIds.Length;
                for (int i = 0; i < t; i++)
                {
                    bool real = i >= padding;
                    ids[r * t + i] = real ? e.InputIds[i - padding] : pad;
                    mask[r * t + i] = real ? 1 : 0;
                    labels[r * t + i] = real ? e.Labels[i - padding] : LabelIds.Ignore;
                }
            }
            return new PaddedBatch(ids, mask, [b, t], labels, [b, t]);
        }
        var (inputs, inputMask, shape) = Pad(examples.Select(e => e.InputIds).ToList(), pad, left: false);
        int l = examples.Max(e => e.Labels.Length);
        var lab = new long[b * l];
        for (int r = 0; r < b; r++)
            for (int i = 0; i < l; i++)
                lab[r * l + i] = i < examples[r].Labels.Length ? examples[r].Labels[i] : LabelIds.Ignore;
        return new PaddedBatch(inputs, inputMask, shape, lab, [b, l]);
    }

    /// <summary>Pads sequences to the longest: left (causal prompts for generation) or right (encoder inputs).</summary>
    public static (long[] Ids, long[] Mask, long[] Shape) Pad(IReadOnlyList<long[]> sequences, long pad, bool left)
    {
        int b = sequences.Count;
        int t = sequences.Max(s => s.Length);
        var ids = new long[b * t];
        var mask = new long[b * t];
        for (int r = 0; r < b; r++)
        {
            var s = sequences[r];
            int offset = left ? t - s.Length : 0;
            for (int i = 0; i < t; i++)
            {
                int j = i - offset;
                bool real = j >= 0 && j < s.Length;
                ids[r * t + i] = real ? s[j] : pad;
                mask[r * t + i] = real ? 1 : 0;
            }
        }
        return (ids, mask, [b, t]);
    }
}
