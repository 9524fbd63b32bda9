using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Runtime;

/// <summary>torch's CrossEntropyLoss (mean over labels other than -100) on logits held in host memory.</summary>
public static class MeanCrossEntropy
{
    /// <summary>
    /// Logits [batch, T, vocab], labels [batch, T]; with <paramref name="shift"/> position t is scored against
    /// label t + 1 (causal LMs).
    /// </summary>
    public static double Of(float[] logits, int vocab, long[] labels, bool shift, int batch) =>
        Of(logits, vocab, labels, shift, batch, leadingLogits: null);

    /// <summary>
    /// As above; <paramref name="leadingLogits"/> [vocab] (causal only) are the logits of a position before every row,
    /// scored against each row's first label: a soft prompt's last virtual token, whose labels PEFT sets to -100 but
    /// whose prediction of the first real label is part of its loss.
    /// </summary>
    public static double Of(float[] logits, int vocab, long[] labels, bool shift, int batch, float[]? leadingLogits)
    {
        if (leadingLogits != null && (!shift || leadingLogits.Length != vocab))
            throw new ArgumentException($"leading logits need a causal (shifted) loss and [{vocab}] values");
        int length = labels.Length / batch;
        double sum = 0;
        long count = 0;
        for (int b = 0; b < batch; b++)
        {
            if (leadingLogits != null) Score(leadingLogits, labels[b * length], vocab, ref sum, ref count);
            for (int t = 0; t < length - (shift ? 1 : 0); t++)
                Score(logits.AsSpan((b * length + t) * vocab, vocab), labels[b * length + t + (shift ? 1 : 0)], vocab, ref sum, ref count);
        }
        if (count == 0) throw new PeftOnnxException("labels has no position other than -100: the loss is undefined");
        return sum / count;
    }

    /// <summary>Adds -log softmax(row)[label] unless the label is -100.</summary>
    private static void Score(ReadOnlySpan<float> row, long label, int vocab, ref double sum, ref long count)
    {
        if (label == LabelIds.Ignore) return;
        if (label < 0 || label >= vocab) throw new PeftOnnxException($"labels holds {label}, outside the vocabulary [0, {vocab}) and not -100");
        double max = double.NegativeInfinity;
        foreach (var v in row) max = Math.Max(max, v);
        double z = 0;
        foreach (var v in row) z += Math.Exp(v - max);
        sum += max + Math.Log(z) - row[(int)label];
        count++;
    }
}
