namespace Peft.Onnx.Trainer.Finetune;

/// <summary>
/// A small deterministic generator (SplitMix64) whose whole state is one number, so a checkpoint can carry it and a
/// resumed run draws the same permutations. Not torch.randperm: only reproducible within this project.
/// </summary>
public sealed class SeededRandom
{
    public SeededRandom(ulong state) => State = state;

    public static SeededRandom FromSeed(long seed) => new(unchecked((ulong)seed) ^ 0x5DEECE66DUL);

    /// <summary>The state after every draw so far.</summary>
    public ulong State { get; private set; }

    public ulong NextUInt64()
    {
        unchecked
        {
            ulong z = State += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>Uniform in [0, bound), without modulo bias.</summary>
    public int NextInt(int bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound));
        ulong b = (ulong)bound;
        ulong limit = ulong.MaxValue - ulong.MaxValue % b;
        ulong x;
        do x = NextUInt64(); while (x >= limit);
        return (int)(x % b);
    }

    /// <summary>A random permutation of 0..n-1 (Fisher-Yates).</summary>
    public int[] Permutation(int n)
    {
        var p = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
