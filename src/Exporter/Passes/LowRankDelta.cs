namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// A delta that is a scaled product B' @ A' (VeRA and AdaLoRA fold their vectors into the two factors), added as
/// LoRA's is: to an nn.Linear weight [out, in] or a Conv1D weight [in, out].
/// </summary>
public sealed class LowRankDelta(float[] a, float[] b, int rank, int inFeatures, int outFeatures, double scaling, bool conv1D) : IDeltaWeight
{
    private readonly LoraDelta _delta = new(a, b, rank, inFeatures, outFeatures, scaling, conv1D);

    public void AddTo(Span<float> w, long start) => _delta.AddTo(w, start);
}
