namespace Peft.Onnx.Exporter.Passes;

/// <summary>The weight change of one adapted module, [out, in] row-major, added to any range of the weight.</summary>
public interface IDeltaWeight
{
    /// <summary>Adds delta elements [start, start + w.Length) to <paramref name="w"/>.</summary>
    void AddTo(Span<float> w, long start);
}
