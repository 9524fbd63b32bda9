namespace Peft.Onnx.Core.Peft;

/// <summary>
/// The spectrum positions of a FourierFT layer, which PEFT never saves but recomputes from random_loc_seed:
/// torch.randperm(out * in, generator seeded with random_loc_seed)[:n_frequency], each flat index split into
/// (index / in, index % in). torch's CPU randperm for such n (below 2^32 / 20) is a forward Fisher-Yates shuffle
/// drawing random() % (n - i) for each position i.
/// </summary>
public static class FourierFtPositions
{
    /// <summary>The first <paramref name="count"/> flat indices of torch.randperm(<paramref name="n"/>) under the seed.</summary>
    public static long[] RandpermPrefix(long n, int count, long seed)
    {
        if (n >= uint.MaxValue / 20)
            throw new PeftOnnxException($"randperm of {n} positions is beyond the small-n algorithm reproduced here (expected out * in below {uint.MaxValue / 20})");
        var perm = new long[n];
        for (long i = 0; i < n; i++) perm[i] = i;
        var generator = new TorchMt19937(unchecked((ulong)seed));
        for (long i = 0; i < n - 1; i++)
        {
            long z = generator.Next() % (n - i);
            (perm[i], perm[z + i]) = (perm[z + i], perm[i]);
        }
        return perm[..count];
    }

    /// <summary>(row, column) of each spectrum entry in an [out, in] weight.</summary>
    public static (int Row, int Column)[] For(int outFeatures, int inFeatures, int nFrequency, long seed) =>
        RandpermPrefix((long)outFeatures * inFeatures, nFrequency, seed).Select(i => ((int)(i / inFeatures), (int)(i % inFeatures))).ToArray();
}
