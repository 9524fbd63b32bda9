using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// PEFT's IA3 merge (ia3/layer.py Linear.merge): the learned vector l scales the module's output for ordinary
/// targets (rows of an nn.Linear weight [out, in] and the bias; ia3_l saved [out, 1]) and its input for feed-forward
/// targets (columns of the weight, not the bias; ia3_l saved [1, in]). GPT-2's Conv1D stores its weight [in, out]
/// (fan_in_fan_out), so there the output side is the weight's columns and the input side its rows. float32
/// products, as torch.mul.
/// </summary>
public sealed class MergeIa3 : WeightPass
{
    private readonly Dictionary<string, (TargetMatch Match, float[] L)> _byWeight = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (TargetMatch Match, float[] L)> _byBias = new(StringComparer.Ordinal);

    private MergeIa3(WeightSource inner) : base(inner) { }

    /// <summary>Checks the adapter against the base (ia3_l [out, 1] or [1, in]) and wraps <paramref name="weights"/> with the merge.</summary>
    public static MergeIa3 Apply(Ia3Config config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var pass = new MergeIa3(weights);
        foreach (var t in config.FindTargets(arch))
        {
            if (!weights.Contains(t.Linear.WeightName))
                throw new PeftOnnxException($"{adapter.Dir}: the adapter targets '{t.Path}', whose weight is tied to the input embeddings in this base; exporting an adapted tied head is not supported");
            long[] shape = t.IsFeedforward ? [1, t.Linear.InFeatures] : [t.Linear.OutFeatures, 1];
            var l = adapter.Read(AdapterFormat.Ia3Key(t.Path), shape,
                $"'{t.Path}' ({(t.IsFeedforward ? "feed-forward: scales its " + t.Linear.InFeatures + " inputs" : "scales its " + t.Linear.OutFeatures + " outputs")})");
            pass._byWeight[t.Linear.WeightName] = (t, l);
            if (!t.IsFeedforward && t.Linear.HasBias) pass._byBias[t.Linear.BiasName] = (t, l);
        }
        return pass;
    }

    protected override bool Changes(string name) => _byWeight.ContainsKey(name) || _byBias.ContainsKey(name);

    protected override void ReadChanged(string name, long start, Span<float> destination)
    {
        Inner.Read(name, start, destination);
        if (_byBias.TryGetValue(name, out var b))
        {
            TensorPrimitives.Multiply(destination, b.L.AsSpan(checked((int)start), destination.Length), destination);
            return;
        }
        var (t, l) = _byWeight[name];
        Scale(destination, start, l, checked((int)t.Linear.InFeatures), checked((int)t.Linear.OutFeatures), t.IsFeedforward, t.Linear.IsConv1D);
    }

    /// <summary>
    /// Scales w ([out, in], or [in, out] for <paramref name="conv1D"/>) by l along the input features
    /// (<paramref name="feedforward"/>) or the output features.
    /// </summary>
    public static void Scale(float[] w, float[] l, int inFeatures, int outFeatures, bool feedforward, bool conv1D) =>
        Scale(w, 0, l, inFeatures, outFeatures, feedforward, conv1D);

    /// <summary>As above for the weight's elements [start, start + w.Length): float32 products, element by element as torch.mul.</summary>
    // optimized at first call: these loops run a few times on gigabytes, too few calls for tiered compilation to reach them in time
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scale(Span<float> w, long start, float[] l, int inFeatures, int outFeatures, bool feedforward, bool conv1D)
    {
        int rowLength = conv1D ? outFeatures : inFeatures;
        // the scaled features run along the stored rows when they are the rows' own index (outputs of [out, in], inputs of [in, out])
        bool perRow = conv1D == feedforward;
        for (long e = start, end = start + w.Length; e < end;)
        {
            long row = e / rowLength;
            int col = (int)(e % rowLength);
            int n = (int)Math.Min(rowLength - col, end - e);
            var segment = w.Slice((int)(e - start), n);
            if (perRow) TensorPrimitives.Multiply(segment, l[row], segment);
            else TensorPrimitives.Multiply(segment, l.AsSpan(col, n), segment);
            e += n;
        }
    }
}
