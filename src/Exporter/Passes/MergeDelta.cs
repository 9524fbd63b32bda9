using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// A merge that adds a per-element delta to each target's nn.Linear weight [out, in] (LoHa, LoKr): W' = W + delta,
/// computed range by range as the weight streams to the data file; the bias is unchanged.
/// </summary>
public abstract class MergeDelta : WeightPass
{
    private readonly Dictionary<string, IDeltaWeight> _byWeight = new(StringComparer.Ordinal);

    protected MergeDelta(WeightSource inner) : base(inner) { }

    /// <summary>Registers the delta of one target; refuses a target whose weight the base ties to the embeddings.</summary>
    protected void Add(TargetMatch target, IDeltaWeight delta, string adapterDir)
    {
        if (!Inner.Contains(target.Linear.WeightName))
            throw new PeftOnnxException($"{adapterDir}: the adapter targets '{target.Path}', whose weight is tied to the input embeddings in this base; exporting an adapted tied head is not supported");
        _byWeight[target.Linear.WeightName] = delta;
    }

    public int Count => _byWeight.Count;

    protected override bool Changes(string name) => _byWeight.ContainsKey(name);

    protected override void ReadChanged(string name, long start, Span<float> destination)
    {
        Inner.Read(name, start, destination);
        _byWeight[name].AddTo(destination, start);
    }
}
