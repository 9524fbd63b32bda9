using System.Runtime.CompilerServices;
using System.Numerics;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// One LoRA target with its adapter tensors: A [r, in], B [out, r] (PEFT's nn.Linear layouts), lora_B's bias [out]
/// with lora_bias, DoRA's magnitude [out] with use_dora.
/// </summary>
public sealed record LoraTarget(TargetMatch Match, float[] A, float[] B)
{
    public LinearSpec Linear => Match.Linear;
    public int Rank => Match.Rank;

    /// <summary>lora_B.bias (lora_bias = true), else null.</summary>
    public float[]? BBias { get; init; }

    /// <summary>lora_magnitude_vector (use_dora = true), else null.</summary>
    public float[]? Magnitude { get; init; }

    /// <summary>This target kept unmerged, as a graph's side branch; DoRA's factor is computed from the base weight in <paramref name="weights"/>.</summary>
    public LoraBranch AsBranch(WeightSource weights) =>
        new(Linear.Path, Rank, A, B, Match.Scaling) { Bias = BBias, MagnitudeScale = Magnitude is null ? null : DoraFactor(weights) };

    /// <summary>
    /// DoRA's m / ||W + scaling * B @ A|| for each output (get_weight_norm over in_features), W read from
    /// <paramref name="weights"/> in its checkpoint layout (GPT-2's Conv1D [in, out] is transposed first, as PEFT does).
    /// The norm is summed in double; PEFT's float32 norm differs from it by rounding only.
    /// </summary>
    public float[] DoraFactor(WeightSource weights)
    {
        int inF = checked((int)Linear.InFeatures), outF = checked((int)Linear.OutFeatures);
        var w = weights.ReadFloat32(Linear.WeightName);
        new LoraDelta(A, B, Rank, inF, outF, Match.Scaling, Linear.IsConv1D).AddTo(w, 0);
        var squares = new double[outF];
        for (long e = 0; e < w.LongLength; e++)
        {
            int output = Linear.IsConv1D ? (int)(e % outF) : (int)(e / inF);
            squares[output] += (double)w[e] * w[e];
        }
        return Enumerable.Range(0, outF).Select(o => (float)(Magnitude![o] / Math.Sqrt(squares[o]))).ToArray();
    }

    /// <summary>
    /// Reads and checks the LoRA tensors of every target of <paramref name="config"/> in <paramref name="arch"/>:
    /// lora_A [r, in_features] and lora_B [out_features, r], r from rank_pattern or r; lora_B.bias [out] with
    /// lora_bias and lora_magnitude_vector [out] with use_dora.
    /// </summary>
    public static IReadOnlyList<LoraTarget> ReadAll(LoraConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights)
    {
        var result = new List<LoraTarget>();
        foreach (var t in config.FindTargets(arch))
        {
            if (!weights.Contains(t.Linear.WeightName))
                throw new Core.PeftOnnxException($"{adapter.Dir}: the adapter targets '{t.Path}', whose weight is tied to the input embeddings in this base; exporting an adapted tied head is not supported");
            var what = $"'{t.Path}' (in {t.Linear.InFeatures}, out {t.Linear.OutFeatures}, r {t.Rank})";
            var a = adapter.Read(AdapterFormat.LoraAKey(t.Path), [t.Rank, t.Linear.InFeatures], what);
            var b = adapter.Read(AdapterFormat.LoraBKey(t.Path), [t.Linear.OutFeatures, t.Rank], what);
            result.Add(new LoraTarget(t, a, b)
            {
                BBias = config.HasLoraBias ? adapter.Read(AdapterFormat.LoraBBiasKey(t.Path), [t.Linear.OutFeatures], $"the lora_B bias (lora_bias = true) of {what}") : null,
                Magnitude = config.UsesDora ? adapter.Read(AdapterFormat.LoraMagnitudeKey(t.Path), [t.Linear.OutFeatures], $"the DoRA magnitude (use_dora = true) of {what}") : null,
            });
        }
        return result;
    }
}

/// <summary>
/// PEFT's LoRA merge (lora/layer.py Linear.merge, get_delta_weight): W' = W + scaling * (B @ A) for each target,
/// scaling = lora_alpha / r (alpha / sqrt(r) with use_rslora), the delta transposed for GPT-2's Conv1D whose weight
/// is stored [in, out] (fan_in_fan_out). Computed range by range as each weight streams to the data file
/// (<see cref="LoraDelta"/>). DoRA then scales each output of the sum by m / ||W + scaling * B @ A||; lora_bias adds
/// scaling * lora_B.bias to the base bias, or, where the module has none, leaves it as a graph term
/// (<see cref="AddedBiases"/>).
/// </summary>
public sealed class MergeLora : WeightPass
{
    private readonly Dictionary<string, LoraTarget> _byWeight;
    private readonly Dictionary<string, LoraDelta> _deltas;
    private readonly Dictionary<string, LoraDelta> _transposedDeltas;
    private readonly Dictionary<string, Lazy<float[]>> _doraFactors;
    private readonly Dictionary<string, LoraTarget> _byBias;

    private MergeLora(WeightSource inner, IReadOnlyList<LoraTarget> targets) : base(inner)
    {
        _byWeight = targets.ToDictionary(t => t.Linear.WeightName, StringComparer.Ordinal);
        _deltas = targets.ToDictionary(t => t.Linear.WeightName, t => new LoraDelta(t.A, t.B, t.Rank, checked((int)t.Linear.InFeatures),
            checked((int)t.Linear.OutFeatures), t.Match.Scaling, t.Linear.IsConv1D), StringComparer.Ordinal);
        // an nn.Linear weight [out, in] is written transposed, [in, out]: Conv1D's layout, so the same delta in that layout
        // (DoRA's merge scales the sum, so it is no plain addend)
        _transposedDeltas = targets.Where(t => !t.Linear.IsConv1D && t.Magnitude is null).ToDictionary(t => t.Linear.WeightName, t => new LoraDelta(t.A, t.B, t.Rank,
            checked((int)t.Linear.InFeatures), checked((int)t.Linear.OutFeatures), t.Match.Scaling, conv1D: true), StringComparer.Ordinal);
        _doraFactors = targets.Where(t => t.Magnitude is not null)
            .ToDictionary(t => t.Linear.WeightName, t => new Lazy<float[]>(() => t.DoraFactor(inner)), StringComparer.Ordinal);
        _byBias = targets.Where(t => t.BBias is not null && t.Linear.HasBias).ToDictionary(t => t.Linear.BiasName, StringComparer.Ordinal);
        AddedBiases = targets.Where(t => t.BBias is not null && !t.Linear.HasBias)
            .Select(t => LoraBranch.AddedBias(t.Linear.Path, t.BBias!, t.Match.Scaling)).ToList();
    }

    public IReadOnlyCollection<LoraTarget> Targets => _byWeight.Values;

    /// <summary>lora_bias on modules without a bias: the scaled lora_B bias each must add in the graph (the merged weights hold the rest).</summary>
    public IReadOnlyList<LoraBranch> AddedBiases { get; }

    /// <summary>Checks the adapter against the base and wraps <paramref name="weights"/> with the merge.</summary>
    public static MergeLora Apply(LoraConfig config, Architecture arch, AdapterWeights adapter, WeightSource weights) =>
        new(weights, LoraTarget.ReadAll(config, arch, adapter, weights));

    protected override bool Changes(string name) => _byWeight.ContainsKey(name) || _byBias.ContainsKey(name);

    protected override void ReadChanged(string name, long start, Span<float> destination)
    {
        Inner.Read(name, start, destination);
        if (_byBias.TryGetValue(name, out var biased))
        {
            for (int i = 0; i < destination.Length; i++) destination[i] += (float)(biased.Match.Scaling * biased.BBias![start + i]);
            return;
        }
        _deltas[name].AddTo(destination, start);
        if (!_doraFactors.TryGetValue(name, out var factors)) return;
        var f = factors.Value;
        var linear = _byWeight[name].Linear;
        for (int i = 0; i < destination.Length; i++)
        {
            long e = start + i;
            destination[i] *= f[linear.IsConv1D ? (int)(e % linear.OutFeatures) : (int)(e / linear.InFeatures)];
        }
    }

    /// <summary>A merged nn.Linear weight read transposed: the weight below, transposed where it lies, plus the delta in [in, out] (same values as <see cref="ReadChanged"/> transposed).</summary>
    public override TransposedTerm? TransposedAddend(string name)
    {
        if (_doraFactors.ContainsKey(name)) return null;
        if (!_transposedDeltas.TryGetValue(name, out var delta)) return base.TransposedAddend(name);
        return Inner.TransposedAddend(name) == null ? new TransposedTerm(Inner, delta) : null;
    }

    /// <summary>
    /// w += scaling * (B @ A), w laid out [out, in] (nn.Linear) or [in, out] (<paramref name="conv1D"/>); A [r, in],
    /// B [out, r]. Each delta element is summed in float32 with fused multiply-adds, scaled, then added.
    /// </summary>
    public static void AddDelta(float[] w, float[] a, float[] b, int rank, int inFeatures, int outFeatures, double scaling, bool conv1D)
    {
        if (w.LongLength != (long)inFeatures * outFeatures) throw new ArgumentException("weight size does not match in x out");
        new LoraDelta(a, b, rank, inFeatures, outFeatures, scaling, conv1D).AddTo(w, 0);
    }
}

/// <summary>
/// scaling * (B @ A) of one LoRA target, added to any range of its weight as stored (nn.Linear [out, in], Conv1D
/// [in, out]). Each element is the sum over the rank in order in float32, as PEFT's float32 matmul computes it, each
/// term a fused multiply-add (one rounding per term, the same in a vector lane as in the scalar tail), then times the
/// scaling and added, so the result does not depend on how the weight is cut into ranges or rows into vectors.
/// (Sums in double cost twice the vector width and, on a LoRA of a 560M-parameter model, ~20 % of the export's CPU time.)
/// </summary>
public sealed class LoraDelta : ITransposedTerm
{
    private const long ParallelElements = 1 << 16;

    private readonly int _rank;
    private readonly int _rowLength;
    private readonly float _scaling;
    private readonly float[] _rowFactors;   // [rows, r]: B for nn.Linear (a row per output), A^T for Conv1D (a row per input)
    private readonly float[] _basis;        // [r, rowLength]: A for nn.Linear, B^T for Conv1D

    public LoraDelta(float[] a, float[] b, int rank, int inFeatures, int outFeatures, double scaling, bool conv1D)
    {
        if (a.LongLength != (long)rank * inFeatures || b.LongLength != (long)outFeatures * rank) throw new ArgumentException("A must be [r, in] and B [out, r]");
        _rank = rank;
        _scaling = (float)scaling;
        if (!conv1D)
        {
            _rowLength = inFeatures;
            _rowFactors = (float[])b.Clone();
            _basis = (float[])a.Clone();
        }
        else
        {
            _rowLength = outFeatures;
            _rowFactors = new float[(long)inFeatures * rank];
            _basis = new float[(long)rank * outFeatures];
            for (int k = 0; k < rank; k++)
            {
                for (int i = 0; i < inFeatures; i++) _rowFactors[(long)i * rank + k] = a[(long)k * inFeatures + i];
                for (int o = 0; o < outFeatures; o++) _basis[(long)k * outFeatures + o] = b[(long)o * rank + k];
            }
        }
    }

    /// <summary>Adds the delta to <paramref name="w"/>, the weight's elements [start, start + w.Length).</summary>
    public unsafe void AddTo(Span<float> w, long start)
    {
        long rows = (start + w.Length + _rowLength - 1) / _rowLength - start / _rowLength;
        int parts = w.Length >= ParallelElements ? (int)Math.Min(Environment.ProcessorCount, rows) : 1;
        fixed (float* p = w)
        {
            if (parts <= 1)
            {
                AddRange(p, start, w.Length);
                return;
            }
            nint at = (nint)p;
            int length = w.Length;
            Parallel.For(0, parts, part =>
            {
                // split on row boundaries of the weight
                long first = start / _rowLength, from = Math.Max(start, (first + rows * part / parts) * _rowLength);
                long to = Math.Min(start + length, (first + rows * (part + 1) / parts) * _rowLength);
                if (to > from) AddRange((float*)at + (from - start), from, (int)(to - from));
            });
        }
    }

    // optimized at first call: these loops run a few times on gigabytes, too few calls for tiered compilation to reach them in time
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void AddRange(float* w, long start, int length)
    {
        var factors = new float[_rank];
        var ranks = new int[_rank];
        for (long e = start, end = start + length; e < end;)
        {
            long row = e / _rowLength;
            int col = (int)(e % _rowLength);
            int n = (int)Math.Min(_rowLength - col, end - e);
            int used = 0;
            for (int k = 0; k < _rank; k++)
            {
                float f = _rowFactors[row * _rank + k];
                if (f == 0) continue;   // adds nothing; a freshly initialised LoRA (B = 0) costs no arithmetic
                factors[used] = f;
                ranks[used++] = k;
            }
            if (used > 0) AddRow(w + (e - start), col, n, factors, ranks, used);
            e += n;
        }
    }

    /// <summary>
    /// w[j] += scaling * (sum over the used ranks k, in order, of factor_k * basis[k, col + j]) for j below
    /// <paramref name="n"/>: each sum kept in a register across the ranks (two Vector&lt;float&gt;s at a time), every
    /// term a fused multiply-add, the scalar tail the same operations one element at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void AddRow(float* w, int col, int n, float[] factors, int[] ranks, int used)
    {
        fixed (float* basis = _basis)
        fixed (float* f = factors)
        fixed (int* k = ranks)
        {
            int j = 0;
            int width = Vector<float>.Count;
            var scale = new Vector<float>(_scaling);
            if (Vector.IsHardwareAccelerated)
                for (; j + 2 * width <= n; j += 2 * width)
                {
                    var lo = Vector<float>.Zero;
                    var hi = Vector<float>.Zero;
                    for (int u = 0; u < used; u++)
                    {
                        var factor = new Vector<float>(f[u]);
                        float* b = basis + (long)k[u] * _rowLength + col + j;
                        lo = Vector.FusedMultiplyAdd(factor, Vector.Load(b), lo);
                        hi = Vector.FusedMultiplyAdd(factor, Vector.Load(b + width), hi);
                    }
                    Vector.Store(Vector.Load(w + j) + lo * scale, w + j);
                    Vector.Store(Vector.Load(w + j + width) + hi * scale, w + j + width);
                }
            for (; j < n; j++)
            {
                float sum = 0;
                for (int u = 0; u < used; u++) sum = MathF.FusedMultiplyAdd(f[u], basis[(long)k[u] * _rowLength + col + j], sum);
                w[j] += sum * _scaling;
            }
        }
    }
}
