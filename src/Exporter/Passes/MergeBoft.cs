using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// PEFT's BOFT merge (boft/layer.py Linear.merge): W' = (W @ R^T) * boft_s on each target's nn.Linear weight [out, in]
/// (<see cref="BoftRotation"/>; boft_s [out, 1] scales each output row); the bias is unchanged. The rows covering a
/// requested range are read, rotated and scaled in double precision.
/// </summary>
public sealed class MergeBoft : WeightPass
{
    private readonly Dictionary<string, (BoftRotation Rotation, float[] Scale)> _byWeight = new(StringComparer.Ordinal);

    private MergeBoft(WeightSource inner) : base(inner) { }

    /// <summary>Reads and checks every target's boft_R and boft_s (their shapes follow from the block settings) and wraps <paramref name="weights"/>.</summary>
    public static MergeBoft Apply(BoftConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeBoft(weights);
        foreach (var t in config.FindTargets(arch))
        {
            if (!weights.Contains(t.Linear.WeightName))
                throw new PeftOnnxException($"{adapter.Dir}: the adapter targets '{t.Path}', whose weight is tied to the input embeddings in this base; exporting an adapted tied head is not supported");
            var rotation = config.RotationTensor(t);
            var scale = BoftConfig.ScaleTensor(t);
            var r = adapter.Read(rotation.Key, rotation.Shape, rotation.Detail);
            var s = adapter.Read(scale.Key, scale.Shape, scale.Detail);
            pass._byWeight[t.Linear.WeightName] = (new BoftRotation(r, config.BoftNButterflyFactor, t.Rank, BoftConfig.BlockSizeOf(t), checked((int)t.Linear.InFeatures)), s);
        }
        return pass;
    }

    public int Count => _byWeight.Count;

    protected override bool Changes(string name) => _byWeight.ContainsKey(name);

    protected override void ReadChanged(string name, long start, Span<float> destination)
    {
        var (rotation, scale) = _byWeight[name];
        int inF = rotation.InFeatures;
        long firstRow = start / inF, endRow = (start + destination.Length + inF - 1) / inF;
        var rows = new float[checked((int)((endRow - firstRow) * inF))];
        Inner.Read(name, firstRow * inF, rows);
        var v = new double[inF];
        for (int offset = 0, row = checked((int)firstRow); offset < rows.Length; offset += inF, row++)
        {
            for (int k = 0; k < inF; k++) v[k] = rows[offset + k];
            rotation.Rotate(v);
            for (int k = 0; k < inF; k++) rows[offset + k] = (float)(v[k] * scale[row]);
        }
        rows.AsSpan(checked((int)(start - firstRow * inF)), destination.Length).CopyTo(destination);
    }
}
