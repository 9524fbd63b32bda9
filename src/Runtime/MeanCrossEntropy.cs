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
    public static double Of(float[] logits, int vocab, long[] labels, bool shift, int batch)
    {
        int length = labels.Length / batch;
        double sum = 0;
        long count = 0;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < length - (shift ? 1 : 0); t++)
            {
                var label = labels[b * length + t + (shift ? 1 : 0)];
                if (label == LabelIds.Ignore) continue;
                if (label < 0 || label >= vocab) throw new PeftOnnxException($"labels holds {label}, outside the vocabulary [0, {vocab}) and not -100");
                var row = logits.AsSpan((b * length + t) * vocab, vocab);
                double max = double.NegativeInfinity;
                foreach (var v in row) max = Math.Max(max, v);
                double z = 0;
                foreach (var v in row) z += Math.Exp(v - max);
                sum += max + Math.Log(z) - row[(int)label];
                count++;
            }
        if (count == 0) throw new PeftOnnxException("labels has no position other than -100: the loss is undefined");
        return sum / count;
    }
}
