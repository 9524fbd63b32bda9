namespace Peft.Onnx.Core.Peft;

/// <summary>
/// Re(ifft2(S)) * scaling for a real spectrum S with n entries, summed directly in double precision:
/// delta[m, c] = scaling / (out * in) * sum_j s_j cos(2 pi (k_j m / out + l_j c / in)).
/// </summary>
public sealed class FourierFtDelta(float[] spectrum, (int Row, int Column)[] positions, int outFeatures, int inFeatures, double scaling)
{
    public int OutFeatures => outFeatures;
    public int InFeatures => inFeatures;

    /// <summary>One element of the [out, in] delta.</summary>
    public double At(int row, int column)
    {
        double sum = 0;
        for (int j = 0; j < spectrum.Length; j++)
        {
            var (k, l) = positions[j];
            // reduce the phase exactly in integers before the cosine
            long a = (long)k * row % outFeatures * inFeatures + (long)l * column % inFeatures * outFeatures;
            double phase = 2 * Math.PI * (a % ((long)outFeatures * inFeatures)) / ((double)outFeatures * inFeatures);
            sum += spectrum[j] * Math.Cos(phase);
        }
        return sum * scaling / ((double)outFeatures * inFeatures);
    }
}
