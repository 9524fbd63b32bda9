using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// T5ForConditionalGeneration and MT5ForConditionalGeneration (transformers 4.33 modeling_t5.py) as the two graphs
/// of <see cref="Seq2SeqInterface"/>: <see cref="T5EncoderGraph"/> (encoder stack + the decoder's cross-attention
/// keys/values) and <see cref="T5DecoderGraph"/> (decoder stack with its self-attention cache + lm_head).
/// The pieces both stacks share (T5LayerNorm, T5Attention, T5LayerFF, compute_bias) live in <see cref="T5Layers"/>.
/// </summary>
public static class T5Graph
{
    /// <summary>Builds both graphs; weight initializers stay deferred until the models are written.</summary>
    public static Seq2SeqGraphs Build(T5Config config, WeightSource weights) => Build(config, weights, Seq2SeqGraphOptions.Default);

    /// <summary>Builds both graphs with <paramref name="options"/> (encoder soft prompt, decoder prefix).</summary>
    public static Seq2SeqGraphs Build(T5Config config, WeightSource weights, Seq2SeqGraphOptions options)
    {
        CheckSupported(config);
        if (options.HasEncoderPrompt && options.EncoderPrompt!.LongLength != (long)options.EncoderPromptLength * config.DModel)
            throw new PeftOnnxException($"{config.SourcePath}: encoder soft prompt of {options.EncoderPrompt.LongLength} values is not [{options.EncoderPromptLength}, d_model {config.DModel}]");
        options.DecoderPrefix?.CheckFits(config.DecoderLayers, config.NumHeads, config.DKv);
        return new Seq2SeqGraphs(T5EncoderGraph.Build(config, weights, options), T5DecoderGraph.Build(config, weights, options));
    }

    /// <summary>Refuses configs whose relative-position arithmetic transformers itself cannot evaluate.</summary>
    public static void CheckSupported(T5Config config)
    {
        config.Validate();
        // Encoder buckets: half the table per direction, max_exact = num_buckets / 4; decoder: max_exact = num_buckets / 2.
        // _relative_position_bucket divides by max_exact and by log(max_distance / max_exact): both must be positive.
        if (config.RelativeAttentionNumBuckets < 4)
            throw new PeftOnnxException($"{config.SourcePath}: relative_attention_num_buckets = {config.RelativeAttentionNumBuckets}; T5 export needs at least 4");
        if (config.RelativeAttentionMaxDistance <= config.RelativeAttentionNumBuckets / 2)
            throw new PeftOnnxException($"{config.SourcePath}: relative_attention_max_distance = {config.RelativeAttentionMaxDistance} must exceed relative_attention_num_buckets / 2 = {config.RelativeAttentionNumBuckets / 2}");
        if (!Layers.ActivationNames.Contains(config.DenseActFn))
            throw new PeftOnnxException($"{config.SourcePath}: dense_act_fn '{config.DenseActFn}' has no ONNX export");
    }

    /// <summary>
    /// T5Attention._relative_position_bucket for one relative position (memory - query), in the float32 arithmetic
    /// transformers uses (so truncation lands on the same bucket): bidirectional uses half the buckets per
    /// direction with positive offsets in the upper half; unidirectional maps future offsets to bucket 0; within a
    /// direction, distances below max_exact are exact and the rest grow logarithmically up to max_distance.
    /// </summary>
    public static long RelativePositionBucket(long relativePosition, bool bidirectional, int numBuckets, int maxDistance)
    {
        long bucket = 0;
        if (bidirectional)
        {
            numBuckets /= 2;
            if (relativePosition > 0) bucket += numBuckets;
            relativePosition = Math.Abs(relativePosition);
        }
        else
        {
            relativePosition = -Math.Min(relativePosition, 0);
        }
        int maxExact = numBuckets / 2;
        if (relativePosition < maxExact) return bucket + relativePosition;
        // torch: log(rel.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact), all float32
        float scaled = MathF.Log((float)relativePosition / maxExact) / (float)Math.Log((double)maxDistance / maxExact) * (numBuckets - maxExact);
        long large = maxExact + (long)scaled;
        return bucket + Math.Min(large, numBuckets - 1);
    }

    /// <summary>
    /// The bucket of every relative position in [-maxDistance, maxDistance] (index = relative position +
    /// maxDistance). Beyond max_distance the bucket no longer changes, so the graph clamps the relative position
    /// into this range and gathers: exact for any sequence length, and no Log op whose rounding could differ
    /// between execution providers.
    /// </summary>
    public static long[] RelativePositionBucketTable(bool bidirectional, int numBuckets, int maxDistance)
    {
        var table = new long[2 * maxDistance + 1];
        for (int r = -maxDistance; r <= maxDistance; r++) table[r + maxDistance] = RelativePositionBucket(r, bidirectional, numBuckets, maxDistance);
        // The clamp is exact only if the ends are saturated (the last bucket of their direction).
        long farPast = RelativePositionBucket(-maxDistance - 1L, bidirectional, numBuckets, maxDistance);
        long farFuture = RelativePositionBucket(maxDistance + 1L, bidirectional, numBuckets, maxDistance);
        if (table[0] != farPast || table[^1] != farFuture)
            throw new PeftOnnxException($"relative position buckets are not saturated at max_distance {maxDistance} (num_buckets {numBuckets})");
        return table;
    }
}

/// <summary>
/// The modules both T5 stacks are made of, as graph pieces: T5LayerNorm, T5Attention (no 1/sqrt(d) scaling,
/// additive bias = relative position bias + extended mask), T5LayerFF (DenseReluDense or the gated variant),
/// compute_bias, and the additive masks (finfo(float32).min where masked, as transformers builds them).
/// </summary>
internal sealed class T5Layers(GraphBuilder g, T5Config config, WeightSource weights, LoraBranches? lora)
{
    private readonly T5Architecture _arch = new(config);

    public T5Architecture Architecture => _arch;
    public int Heads => config.NumHeads;
    public int HeadDim => config.DKv;
    public long Inner => (long)config.NumHeads * config.DKv;

    public LinearSpec Linear(string path) => _arch.Linear(path);

    public string Project(string path, string x, string? output = null) => Layers.Linear(g, weights, lora, Linear(path), x, output);

    /// <summary>
    /// T5LayerNorm: weight * x * rsqrt(mean(x^2) + eps) over the last axis (no mean subtraction, no bias), which is
    /// <see cref="Layers.RmsNorm"/>'s formula. <paramref name="output"/> names the result (a graph output).
    /// </summary>
    public string LayerNorm(string modulePath, string x, string? output = null)
    {
        var y = Layers.RmsNorm(g, weights, modulePath, x, config.LayerNormEpsilon);
        if (output == null) return y;
        using var _ = g.Scope(ModulePath.ToScope(modulePath));
        return g.Node("Identity", [y], outputs: [output])[0];
    }

    /// <summary>[batch, seq, heads * d_kv] -> [batch, heads, seq, d_kv] (T5Attention's shape()).</summary>
    public string SplitHeads(string x, string? output = null)
    {
        var t = g.Reshape(x, [0, 0, Heads, HeadDim]);
        return output == null ? g.Transpose(t, [0, 2, 1, 3]) : g.Node("Transpose", [t], outputs: [output], attributes: [Attr.Ints("perm", 0, 2, 1, 3)])[0];
    }

    /// <summary>
    /// The rest of T5Attention.forward once q, k, v are in heads layout: softmax(q @ k^T + bias) @ v (no scaling),
    /// heads merged, then the output projection o. With a decoder <paramref name="prefix"/>, its constant keys and
    /// values come before k and v (<see cref="Attention.Scores"/>) and <paramref name="bias"/> covers them.
    /// </summary>
    public string Attend(string modulePath, string q, string k, string v, string bias, PrefixKv? prefix = null)
    {
        var scores = g.Add(Attention.Scores(g, q, k, prefix), bias);
        var probs = g.Softmax(scores, -1);
        var context = Attention.MergeHeads(g, Attention.Context(g, probs, v, prefix), Inner);
        return Project($"{modulePath}.o", context);
    }

    /// <summary>T5LayerFF: pre-norm DenseReluDense (wi, act, wo) or T5DenseGatedActDense (act(wi_0) * wi_1, wo), plus the residual.</summary>
    public string FeedForward(string layerPath, string hidden)
    {
        var x = LayerNorm($"{layerPath}.layer_norm", hidden);
        var ff = $"{layerPath}.DenseReluDense";
        using var _ = g.Scope(ModulePath.ToScope(ff));
        x = config.IsGatedAct
            ? g.Mul(Layers.Activation(g, config.DenseActFn, Project($"{ff}.wi_0", x)), Project($"{ff}.wi_1", x), name: "gate/Mul")
            : Layers.Activation(g, config.DenseActFn, Project($"{ff}.wi", x));
        x = Project($"{ff}.wo", x);
        return g.Add(hidden, x, name: "residual/Add");
    }

    /// <summary>
    /// compute_bias: the relative position bias [1, heads, queries, keys] for query positions
    /// [queryStart, queryEnd) and key positions [0, keyEnd) (int64 scalars), from {attentionPath}.relative_attention_bias.weight
    /// [num_buckets, heads]. Buckets come from <see cref="T5Graph.RelativePositionBucketTable"/> by clamped relative position.
    /// </summary>
    public string PositionBias(string attentionPath, string queryStart, string queryEnd, string keyEnd, bool bidirectional)
    {
        using var _ = g.Scope(ModulePath.ToScope(attentionPath) + "/relative_attention_bias");
        var tableName = $"{attentionPath}.relative_attention_bias.weight";
        var table = g.Initializer(tableName, weights.AsIs(tableName));
        int maxDistance = config.RelativeAttentionMaxDistance;
        var buckets = T5Graph.RelativePositionBucketTable(bidirectional, config.RelativeAttentionNumBuckets, maxDistance);
        var bucketTable = g.Constant(InitializerData.FromInt64(buckets, buckets.Length));

        var one = g.Constant(1L);
        var context = g.Unsqueeze(g.Range(queryStart, queryEnd, one), [1]);            // [Q, 1]
        var memory = g.Unsqueeze(g.Range(g.Constant(0L), keyEnd, one), [0]);           // [1, K]
        var relative = g.Sub(memory, context);                                          // [Q, K]: memory - query
        var clamped = g.Op("Min", [g.Op("Max", [relative, g.Constant((long)-maxDistance)]), g.Constant((long)maxDistance)]);
        var bucket = g.Gather(bucketTable, g.Add(clamped, g.Constant((long)maxDistance)));
        var values = g.Gather(table, bucket);                                           // [Q, K, heads]
        return g.Unsqueeze(g.Transpose(values, [2, 0, 1]), [0]);                        // [1, heads, Q, K]
    }

    /// <summary>invert_attention_mask / get_extended_attention_mask: int64 [batch, seq] -> float (1 - m) * finfo.min [batch, 1, 1, seq].</summary>
    public string ExtendedPaddingMask(string attentionMask)
    {
        using var _ = g.Scope("extended_attention_mask");
        var m = g.Cast(g.Unsqueeze(attentionMask, [1, 2]), ElementType.Float);
        return g.Mul(g.Sub(g.Constant(1f), m), g.Constant(float.MinValue));
    }

    /// <summary>Scalar (rank-0) int64 dimension <paramref name="axis"/> of <paramref name="x"/>.</summary>
    public string Dim(string x, long axis) => g.Squeeze(g.Shape(x, axis, axis + 1), [0]);
}
