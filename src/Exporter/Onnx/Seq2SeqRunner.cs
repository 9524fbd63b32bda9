using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// What the encoder graph returned for a batch: last_hidden_state [batch, cross_length, d_model] and, per decoder
/// layer, the cross-attention keys/values [batch, heads, cross_length, head_dim] the decoder takes as
/// past_key_values.{i}.encoder.*. <see cref="AttentionMask"/> [batch, Length] is the caller's encoder mask, which
/// the decoder takes as encoder_attention_mask. <see cref="CrossLength"/> equals <see cref="Length"/> except for a
/// baked encoder soft prompt (prompt tuning / p-tuning), whose outputs are num_virtual_tokens + Length long.
/// </summary>
public sealed record Seq2SeqEncoderOutput(int Batch, int Length, long[] AttentionMask, float[] LastHiddenState, float[][] CrossKeys, float[][] CrossValues)
{
    private readonly int? _crossLength;

    /// <summary>Length of the encoder outputs (from their shape), >= <see cref="Length"/>.</summary>
    public int CrossLength { get => _crossLength ?? Length; init => _crossLength = value; }
}

/// <summary>One decoder run: logits [batch, seq, vocab] and the self-attention cache including this step.</summary>
public sealed record Seq2SeqStep(float[] Logits, long[] LogitsShape, CausalLmCache Present);

/// <summary>
/// Runs an encoder-decoder export (encoder_model.onnx + decoder_model.onnx with the contract of
/// Graphs.Seq2SeqInterface) on ORT's CPU provider, copying tensors in and out: the encoder once, then the decoder
/// either teacher-forced on a whole decoder input or step by step through its self-attention cache. For export
/// checks and tests, not for serving. Every export kind runs: the cross keys/values take their length from the
/// encoder's outputs (a baked encoder prompt makes them longer than the input), and fp16 exports get their caches
/// in float16 (converted from and to the float32 arrays of this API).
/// </summary>
public sealed class Seq2SeqRunner : IDisposable
{
    public const string EncoderFile = "encoder_model.onnx";
    public const string DecoderFile = "decoder_model.onnx";

    private static readonly Regex PastSelfKey = new(@"^past_key_values\.(\d+)\.decoder\.key$", RegexOptions.CultureInvariant);

    private readonly InferenceSession _encoder;
    private readonly InferenceSession _decoder;

    public Seq2SeqRunner(InferenceSession encoder, InferenceSession decoder)
    {
        _encoder = encoder;
        _decoder = decoder;
        foreach (var required in new[] { "input_ids", "attention_mask" })
            if (!encoder.InputMetadata.ContainsKey(required)) throw new PeftOnnxException($"encoder has no input '{required}' (expected the encoder-decoder interface)");
        foreach (var required in new[] { "input_ids", "encoder_attention_mask" })
            if (!decoder.InputMetadata.ContainsKey(required)) throw new PeftOnnxException($"decoder has no input '{required}' (expected the encoder-decoder interface)");
        NumDecoderLayers = decoder.InputMetadata.Keys.Count(k => PastSelfKey.IsMatch(k));
        if (NumDecoderLayers == 0) throw new PeftOnnxException("decoder has no past_key_values.{i}.decoder.key inputs (expected the encoder-decoder interface)");
        var past = decoder.InputMetadata["past_key_values.0.decoder.key"].Dimensions;
        if (past.Length != 4 || past[1] <= 0 || past[3] <= 0)
            throw new PeftOnnxException($"past_key_values.0.decoder.key has shape [{string.Join(", ", past)}], expected [batch, heads, past_seq, head_dim] with fixed heads and head_dim");
        NumHeads = past[1];
        HeadDim = past[3];
        for (int i = 0; i < NumDecoderLayers; i++)
            foreach (var name in new[] { $"present.{i}.encoder.key", $"present.{i}.encoder.value" })
                if (!encoder.OutputMetadata.ContainsKey(name)) throw new PeftOnnxException($"encoder has no output '{name}' (the decoder has {NumDecoderLayers} layers)");
        if (!encoder.OutputMetadata.TryGetValue("last_hidden_state", out var hidden)) throw new PeftOnnxException("encoder has no output 'last_hidden_state'");
        DModel = hidden.Dimensions[^1];
        if (!decoder.OutputMetadata.TryGetValue("logits", out var logits)) throw new PeftOnnxException("decoder has no output 'logits'");
        VocabSize = logits.Dimensions[^1];
        if (VocabSize <= 0) throw new PeftOnnxException("output 'logits' has no fixed vocabulary dimension");
        SelfCacheType = decoder.InputMetadata["past_key_values.0.decoder.key"].ElementDataType;
        CrossCacheType = decoder.InputMetadata["past_key_values.0.encoder.key"].ElementDataType;
    }

    /// <summary>Element type of past_key_values.{i}.decoder.* (float, or float16 for fp16 exports).</summary>
    public TensorElementType SelfCacheType { get; }

    /// <summary>Element type of past_key_values.{i}.encoder.*.</summary>
    public TensorElementType CrossCacheType { get; }

    public int NumDecoderLayers { get; }
    public int NumHeads { get; }
    public int HeadDim { get; }
    public int DModel { get; }
    public int VocabSize { get; }

    /// <summary>CPU sessions for {dir}/encoder_model.onnx and {dir}/decoder_model.onnx (external data beside them).</summary>
    public static Seq2SeqRunner Open(string dir) => Open(Path.Combine(dir, EncoderFile), Path.Combine(dir, DecoderFile));

    public static Seq2SeqRunner Open(string encoderPath, string decoderPath)
    {
        var encoder = OnnxCheck.CreateSession(encoderPath);
        try
        {
            return new Seq2SeqRunner(encoder, OnnxCheck.CreateSession(decoderPath));
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>An empty self-attention cache (past length 0) for the first decoder step.</summary>
    public CausalLmCache EmptyCache(int batch) =>
        new(batch, 0, Enumerable.Range(0, NumDecoderLayers).Select(_ => Array.Empty<float>()).ToArray(),
            Enumerable.Range(0, NumDecoderLayers).Select(_ => Array.Empty<float>()).ToArray());

    /// <summary>Runs the encoder on <paramref name="inputIds"/> and <paramref name="attentionMask"/> (both [batch, length]).</summary>
    public Seq2SeqEncoderOutput Encode(long[] inputIds, long[] attentionMask, int batch)
    {
        if (batch <= 0 || inputIds.Length % batch != 0) throw new ArgumentException("input_ids length is not a multiple of batch");
        int length = inputIds.Length / batch;
        if (attentionMask.Length != inputIds.Length) throw new ArgumentException($"attention_mask must be [{batch}, {length}]");
        var outputNames = new List<string> { "last_hidden_state" };
        for (int i = 0; i < NumDecoderLayers; i++)
        {
            outputNames.Add($"present.{i}.encoder.key");
            outputNames.Add($"present.{i}.encoder.value");
        }
        using var ids = OrtValue.CreateTensorValueFromMemory(inputIds, [batch, length]);
        using var mask = OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, length]);
        using var runOptions = new RunOptions();
        using var outputs = _encoder.Run(runOptions, ["input_ids", "attention_mask"], [ids, mask], outputNames);
        var hiddenShape = outputs[0].GetTensorTypeAndShape().Shape;
        if (hiddenShape.Length != 3 || hiddenShape[0] != batch || hiddenShape[1] < length || hiddenShape[2] != DModel)
            throw new PeftOnnxException($"output 'last_hidden_state' has shape [{string.Join(", ", hiddenShape)}], expected [{batch}, >= {length}, {DModel}]");
        int crossLength = (int)hiddenShape[1];
        var hidden = Read(outputs[0], [batch, crossLength, DModel], "last_hidden_state");
        var keys = new float[NumDecoderLayers][];
        var values = new float[NumDecoderLayers][];
        long[] crossShape = [batch, NumHeads, crossLength, HeadDim];
        for (int i = 0; i < NumDecoderLayers; i++)
        {
            keys[i] = Read(outputs[1 + 2 * i], crossShape, $"present.{i}.encoder.key");
            values[i] = Read(outputs[2 + 2 * i], crossShape, $"present.{i}.encoder.value");
        }
        return new Seq2SeqEncoderOutput(batch, length, (long[])attentionMask.Clone(), hidden, keys, values) { CrossLength = crossLength };
    }

    /// <summary>
    /// One decoder run on <paramref name="decoderInputIds"/> [batch, seq] after <paramref name="past"/> (null = first
    /// step), attending to <paramref name="encoded"/>.
    /// </summary>
    public Seq2SeqStep Decode(long[] decoderInputIds, Seq2SeqEncoderOutput encoded, CausalLmCache? past = null)
    {
        int batch = encoded.Batch;
        past ??= EmptyCache(batch);
        if (past.Batch != batch) throw new ArgumentException($"cache batch {past.Batch} != {batch}");
        if (decoderInputIds.Length % batch != 0) throw new ArgumentException("decoder input_ids length is not a multiple of batch");
        int seq = decoderInputIds.Length / batch;
        int total = past.Length + seq;

        var names = new List<string> { "input_ids", "encoder_attention_mask" };
        var values = new List<OrtValue>();
        var outputNames = new List<string> { "logits" };
        try
        {
            values.Add(OrtValue.CreateTensorValueFromMemory(decoderInputIds, [batch, seq]));
            values.Add(OrtValue.CreateTensorValueFromMemory(encoded.AttentionMask, [batch, encoded.Length]));
            long[] pastShape = [batch, NumHeads, past.Length, HeadDim];
            long[] crossShape = [batch, NumHeads, encoded.CrossLength, HeadDim];
            for (int i = 0; i < NumDecoderLayers; i++)
            {
                names.Add($"past_key_values.{i}.decoder.key");
                values.Add(Tensor(past.Keys[i], pastShape, SelfCacheType));
                names.Add($"past_key_values.{i}.decoder.value");
                values.Add(Tensor(past.Values[i], pastShape, SelfCacheType));
                names.Add($"past_key_values.{i}.encoder.key");
                values.Add(Tensor(encoded.CrossKeys[i], crossShape, CrossCacheType));
                names.Add($"past_key_values.{i}.encoder.value");
                values.Add(Tensor(encoded.CrossValues[i], crossShape, CrossCacheType));
                outputNames.Add($"present.{i}.decoder.key");
                outputNames.Add($"present.{i}.decoder.value");
            }
            using var runOptions = new RunOptions();
            using var outputs = _decoder.Run(runOptions, names, values, outputNames);
            var logits = Read(outputs[0], [batch, seq, VocabSize], "logits");
            var keys = new float[NumDecoderLayers][];
            var vals = new float[NumDecoderLayers][];
            long[] presentShape = [batch, NumHeads, total, HeadDim];
            for (int i = 0; i < NumDecoderLayers; i++)
            {
                keys[i] = Read(outputs[1 + 2 * i], presentShape, $"present.{i}.decoder.key");
                vals[i] = Read(outputs[2 + 2 * i], presentShape, $"present.{i}.decoder.value");
            }
            return new Seq2SeqStep(logits, [batch, seq, VocabSize], new CausalLmCache(batch, total, keys, vals));
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Teacher-forced logits [batch, decoder_seq, vocab]: the encoder, then the decoder on the whole decoder input.</summary>
    public Seq2SeqStep Forward(long[] inputIds, long[] attentionMask, long[] decoderInputIds, int batch) =>
        Decode(decoderInputIds, Encode(inputIds, attentionMask, batch));

    /// <summary>
    /// Greedy decoding as transformers' generate (num_beams 1, no sampling): every row starts with
    /// <paramref name="decoderStartId"/>; at each step the arg-max token (lowest id on ties) is appended, rows that
    /// already produced an eos token get <paramref name="padId"/> instead, and decoding stops when every row has
    /// finished or after <paramref name="maxNewTokens"/> tokens. Returns [batch][1 + steps].
    /// </summary>
    public long[][] Greedy(long[] inputIds, long[] attentionMask, int batch, int maxNewTokens, long decoderStartId,
        IReadOnlyCollection<long> eosIds, long padId)
    {
        var encoded = Encode(inputIds, attentionMask, batch);
        var sequences = Enumerable.Range(0, batch).Select(_ => new List<long> { decoderStartId }).ToArray();
        var finished = new bool[batch];
        var next = Enumerable.Repeat(decoderStartId, batch).ToArray();
        CausalLmCache? cache = null;
        for (int n = 0; n < maxNewTokens && !finished.All(f => f); n++)
        {
            var step = Decode(next, encoded, cache);
            cache = step.Present;
            for (int b = 0; b < batch; b++)
            {
                long token = finished[b] ? padId : ArgMax(step.Logits.AsSpan(b * VocabSize, VocabSize));
                sequences[b].Add(token);
                next[b] = token;
                if (eosIds.Contains(token)) finished[b] = true;
            }
        }
        return sequences.Select(s => s.ToArray()).ToArray();
    }

    /// <summary>
    /// T5's _shift_right of labels [batch, length]: start token first, the last label dropped, -100 replaced by the
    /// pad token. The teacher-forced decoder input for those labels.
    /// </summary>
    public static long[] ShiftRight(long[] labels, int batch, long decoderStartId, long padId)
    {
        if (batch <= 0 || labels.Length % batch != 0) throw new ArgumentException("labels length is not a multiple of batch");
        int length = labels.Length / batch;
        var shifted = new long[labels.Length];
        for (int b = 0; b < batch; b++)
        {
            shifted[b * length] = decoderStartId;
            for (int t = 1; t < length; t++) shifted[b * length + t] = labels[b * length + t - 1];
        }
        for (int i = 0; i < shifted.Length; i++) if (shifted[i] == -100) shifted[i] = padId;
        return shifted;
    }

    private static long ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int v = 1; v < values.Length; v++) if (values[v] > values[best]) best = v;
        return best;
    }

    private static float[] Read(OrtValue value, long[] expectedShape, string name)
    {
        var shape = value.GetTensorTypeAndShape().Shape;
        if (!shape.SequenceEqual(expectedShape))
            throw new PeftOnnxException($"output '{name}' has shape [{string.Join(", ", shape)}], expected [{string.Join(", ", expectedShape)}]");
        return ToFloat(value);
    }

    /// <summary>A float32 or float16 tensor's values as float32.</summary>
    internal static float[] ToFloat(OrtValue value) => value.GetTensorTypeAndShape().ElementDataType switch
    {
        TensorElementType.Float => value.GetTensorDataAsSpan<float>().ToArray(),
        TensorElementType.Float16 => value.GetTensorDataAsSpan<Float16>().ToArray().Select(h => h.ToFloat()).ToArray(),
        var t => throw new PeftOnnxException($"expected a float or float16 tensor, got {t}"),
    };

    /// <summary><paramref name="data"/> as a tensor of <paramref name="type"/> (float32 as is, float16 converted).</summary>
    internal static OrtValue Tensor(float[] data, long[] shape, TensorElementType type) => type switch
    {
        TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(data, shape),
        TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(data.Select(v => (Float16)v).ToArray(), shape),
        _ => throw new PeftOnnxException($"expected a float or float16 cache input, got {type}"),
    };

    public void Dispose()
    {
        _encoder.Dispose();
        _decoder.Dispose();
    }
}

/// <summary>What <see cref="OnnxCheck.Seq2Seq"/> ran.</summary>
public sealed record Seq2SeqCheckReport(int NumDecoderLayers, int NumHeads, int HeadDim, int DModel, int VocabSize,
    long[] EncoderOutputShape, long[] FirstStepLogitsShape, long[] DecodeLogitsShape);
