using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// PEFT's HRA merge (hra/layer.py Linear.merge): W' = W @ H_1 ... H_r on each target's nn.Linear weight [out, in]
/// (<see cref="HraReflections"/>); the bias is unchanged. The rows covering a requested range are read and reflected
/// in double precision.
/// </summary>
public sealed class MergeHra : WeightPass
{
    private readonly Dictionary<string, HraReflections> _byWeight = new(StringComparer.Ordinal);

    private MergeHra(WeightSource inner) : base(inner) { }

    /// <summary>Reads and checks every target's hra_u [in, r] and wraps <paramref name="weights"/>.</summary>
    public static MergeHra Apply(HraConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeHra(weights);
        foreach (var t in config.FindTargets(arch))
        {
            if (!weights.Contains(t.Linear.WeightName))
                throw new PeftOnnxException($"{adapter.Dir}: the adapter targets '{t.Path}', whose weight is tied to the input embeddings in this base; exporting an adapted tied head is not supported");
            var expected = config.VectorsTensor(t);
            var u = adapter.Read(expected.Key, expected.Shape, expected.Detail);
            pass._byWeight[t.Linear.WeightName] = new HraReflections(u, checked((int)t.Linear.InFeatures), t.Rank, config.ApplyGs);
        }
        return pass;
    }

    public int Count => _byWeight.Count;

    protected override bool Changes(string name) => _byWeight.ContainsKey(name);

    protected override void ReadChanged(string name, long start, Span<float> destination)
    {
        var reflections = _byWeight[name];
        int inF = reflections.InFeatures;
        long firstRow = start / inF, endRow = (start + destination.Length + inF - 1) / inF;
        var rows = new float[checked((int)((endRow - firstRow) * inF))];
        Inner.Read(name, firstRow * inF, rows);
        var v = new double[inF];
        for (int offset = 0; offset < rows.Length; offset += inF)
        {
            for (int k = 0; k < inF; k++) v[k] = rows[offset + k];
            reflections.Reflect(v);
            for (int k = 0; k < inF; k++) rows[offset + k] = (float)v[k];
        }
        rows.AsSpan(checked((int)(start - firstRow * inF)), destination.Length).CopyTo(destination);
    }
}
