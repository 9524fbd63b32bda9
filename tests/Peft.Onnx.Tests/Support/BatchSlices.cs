namespace Peft.Onnx.Tests.Support;

/// <summary>Row-major [batch, total] slices used to compare cached (partial) runs with full runs.</summary>
public static class BatchSlices
{
    public static long[] Ones(int n) => Enumerable.Repeat(1L, n).ToArray();

    /// <summary>Columns [from, to) of every row of a flattened [batch, total] array.</summary>
    public static long[] Columns(long[] ids, int batch, int total, int from, int to)
    {
        var result = new List<long>();
        for (int b = 0; b < batch; b++)
            for (int t = from; t < to; t++) result.Add(ids[b * total + t]);
        return [.. result];
    }

    /// <summary>Logits of positions [from, to) of a full run vs a partial run that produced exactly those positions.</summary>
    public static void AssertPositions(float[] full, float[] part, int batch, int total, int from, int to, int vocab)
    {
        int len = to - from;
        var expected = new float[batch * len * vocab];
        for (int b = 0; b < batch; b++)
            Array.Copy(full, ((long)b * total + from) * vocab, expected, (long)b * len * vocab, (long)len * vocab);
        Tolerance.AssertLogits(expected, part, vocab, null, $"positions {from}..{to - 1}");
    }
}
