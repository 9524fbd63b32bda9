namespace Peft.Onnx.Core.Peft;

/// <summary>
/// BOFT's butterfly permutations (BOFTLayer.block_butterfly_perm): factor i regroups the input into blocks/2^i groups
/// of 2^i x block_size features and, inside each group, takes the half-block chunks in the order evens then odds
/// (0, 2, 4, .., 1, 3, 5, ..). Factor 0 is always the identity. perm[k] is the column of the 1 in row k of PEFT's
/// boft_P[i] (perm2mat).
/// </summary>
public static class BoftButterfly
{
    /// <summary>The permutation of factor <paramref name="factor"/> of <paramref name="factors"/> on <paramref name="inFeatures"/> features in blocks of <paramref name="blockSize"/>.</summary>
    public static int[] Permutation(int inFeatures, int blockSize, int factor, int factors)
    {
        var indices = Enumerable.Range(0, inFeatures).ToArray();
        if (factors == 1) return indices;
        int blocks = inFeatures / blockSize;
        int groups = blocks >> factor;
        int half = blockSize / 2;
        int group = inFeatures / groups;
        int chunks = group / half;
        var order = new int[group];
        int slot = 0;
        foreach (var chunk in Enumerable.Range(0, chunks).Where(c => c % 2 == 0).Concat(Enumerable.Range(0, chunks).Where(c => c % 2 == 1)))
            for (int k = 0; k < half; k++) order[slot++] = chunk * half + k;
        for (int start = 0; start < inFeatures; start += group)
            for (int k = 0; k < group; k++) indices[start + k] = start + order[k];
        return indices;
    }
}
