using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Quantization;

/// <summary>
/// The weights of a quantized export: <paramref name="inner"/>'s tensors unchanged (the adapted float32 weights, so
/// adapters merge in float32 before anything is quantized), carrying the decision the graphs read in
/// <see cref="Graphs.Layers.Linear"/> and <see cref="Graphs.Layers.TiedHead"/>: which linear weights become MatMulNBits.
/// Embedding lookups, norms, biases and unmerged adapter branches read the float32 tensors as before.
/// </summary>
public sealed class QuantizingWeights(WeightSource inner, WeightQuantization quantization, Architecture architecture) : WeightSource
{
    public WeightQuantization Quantization { get; } = quantization.Validated();

    /// <summary>The output head's weight name ("lm_head.weight"), also the name of a tied head's quantized copy.</summary>
    public string HeadWeight { get; } = architecture.OutputHead;

    /// <summary>Whether the linear weight <paramref name="weightName"/> is quantized (all are, but a head kept float).</summary>
    public bool Quantizes(string weightName) => !(Quantization.KeepHeadFloat && weightName == HeadWeight);

    /// <summary>The format <paramref name="weightName"/> is quantized in: the head's own, the attention layers', or the body's.</summary>
    public QuantizationFormat FormatOf(string weightName) =>
        weightName == HeadWeight ? Quantization.HeadOrBodyFormat
        : architecture.IsAttentionWeight(weightName) ? Quantization.AttentionOrBodyFormat
        : Quantization.Format;

    public override bool Contains(string name) => inner.Contains(name);

    public override long[] Shape(string name) => inner.Shape(name);

    public override void Read(string name, long start, Span<float> destination) => inner.Read(name, start, destination);

    public override bool TryGetSpan(string name, long start, int count, out ReadOnlySpan<float> values) => inner.TryGetSpan(name, start, count, out values);

    public override StoredBytes? StoredFloat32(string name) => inner.StoredFloat32(name);

    public override TransposedTerm? TransposedAddend(string name) => inner.TransposedAddend(name);

    public override void Release(string name) => inner.Release(name);
}
