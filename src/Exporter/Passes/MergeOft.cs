using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// PEFT's OFT merge (oft/layer.py Linear.merge, 0.14+): W' = W @ R^T on each target's nn.Linear weight [out, in],
/// R = blockdiag(R_1 .. R_r) from oft_R.weight (<see cref="OftRotation"/>); the bias is unchanged. Each output row
/// mixes only the inputs of one block, so the rows covering a requested range are read and rotated in double
/// precision.
/// </summary>
public sealed class MergeOft : WeightPass
{
    private readonly Dictionary<string, BlockRotation> _byWeight = new(StringComparer.Ordinal);

    private MergeOft(WeightSource inner) : base(inner) { }

    /// <summary>Reads and checks every target's oft_R.weight (its shape follows from the block size) and wraps <paramref name="weights"/>.</summary>
    public static MergeOft Apply(OftConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeOft(weights);
        foreach (var t in config.FindTargets(arch))
        {
            if (!weights.Contains(t.Linear.WeightName))
                throw new PeftOnnxException($"{adapter.Dir}: the adapter targets '{t.Path}', whose weight is tied to the input embeddings in this base; exporting an adapted tied head is not supported");
            var expected = config.RotationTensor(t);
            var row = adapter.Read(expected.Key, expected.Shape, expected.Detail);
            int b = OftConfig.BlockSizeOf(t);
            long length = OftRotation.TriangleLength(b);
            var blocks = new double[t.Rank][];
            for (int i = 0; i < t.Rank; i++)
                blocks[i] = config.BlockShare && i > 0 ? blocks[0] : OftRotation.Block(row, i * length, b, config.UseCayleyNeumann, config.NumCayleyNeumannTerms);
            pass._byWeight[t.Linear.WeightName] = new BlockRotation(blocks, b, checked((int)t.Linear.InFeatures));
        }
        return pass;
    }

    public int Count => _byWeight.Count;

    protected override bool Changes(string name) => _byWeight.ContainsKey(name);

    protected override void ReadChanged(string name, long start, Span<float> destination)
    {
        var rotation = _byWeight[name];
        int inF = rotation.InFeatures;
        long firstRow = start / inF, endRow = (start + destination.Length + inF - 1) / inF;
        var rows = new float[checked((int)((endRow - firstRow) * inF))];
        Inner.Read(name, firstRow * inF, rows);
        rotation.RotateRows(rows);
        rows.AsSpan(checked((int)(start - firstRow * inF)), destination.Length).CopyTo(destination);
    }
}
