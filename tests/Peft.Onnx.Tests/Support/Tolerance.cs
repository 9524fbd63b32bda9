using Xunit;

namespace Peft.Onnx.Tests.Support;

/// <summary>
/// How close a result must be to its reference: float32 engines differ in summation order, so logits may differ by
/// 1e-4 x max(1, std of the reference) and a loss by 1e-4 relative, and no more.
/// </summary>
public static class Tolerance
{
    /// <summary>
    /// Logits agree within 1e-4 x max(1, std of the reference) on real tokens. <paramref name="rowMask"/>
    /// (length = rows = product of all dims but the last) marks real positions; null means all.
    /// </summary>
    public static void AssertLogits(float[] expected, float[] actual, int vocab, bool[]? rowMask = null, string what = "logits")
    {
        Assert.Equal(expected.Length, actual.Length);
        double mean = expected.Average(v => (double)v);
        double std = Math.Sqrt(expected.Average(v => (v - mean) * (v - mean)));
        double tol = 1e-4 * Math.Max(1.0, std);
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            if (rowMask != null && !rowMask[i / vocab]) continue;
            var d = Math.Abs(expected[i] - actual[i]);
            if (double.IsNaN(d) || d > worst) { worst = double.IsNaN(d) ? double.PositiveInfinity : d; worstAt = i; }
        }
        Assert.True(worst <= tol, $"{what}: max |diff| {worst:g4} at {worstAt} (row {worstAt / vocab}) exceeds {tol:g4}; expected {(worstAt >= 0 ? expected[worstAt] : 0)}, got {(worstAt >= 0 ? actual[worstAt] : 0)}");
    }

    public static void AssertLoss(double expected, double actual, string what = "loss") =>
        Assert.True(Math.Abs(expected - actual) <= 1e-4 * Math.Max(1.0, Math.Abs(expected)), $"{what}: expected {expected}, got {actual}");

    /// <summary>Row mask from an attention mask [B, T] flattened.</summary>
    public static bool[] RowsFromMask(long[] mask) => mask.Select(m => m != 0).ToArray();
}
