using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime.Sampling;

namespace Peft.Onnx.Runtime;

/// <summary>
/// Whole forwards of an encoder-decoder export (<see cref="Seq2SeqContract"/>) with tensors copied in and out as
/// float32 arrays: the encoder once, then the decoder either teacher-forced on a whole decoder input or step by step
/// through its self-attention cache. For `forward --onnx`, compare, the export check and tests; generation runs the
/// same <see cref="Seq2SeqGraph"/> through <see cref="OnnxModel"/>. Every export kind runs: the cross keys/values take
/// their length from the encoder's outputs (a baked encoder prompt makes them longer than the input), and fp16 exports
/// get their caches in float16.
/// </summary>
public sealed class Seq2SeqForward : IDisposable
{
    private readonly Seq2SeqGraph _graph;

    private Seq2SeqForward(Seq2SeqGraph graph)
    {
        _graph = graph;
        if (!graph.Encoder.OutputMetadata.TryGetValue(Seq2SeqContract.LastHiddenState, out var hidden))
            throw new PeftOnnxException($"encoder has no output '{Seq2SeqContract.LastHiddenState}'");
        DModel = hidden.Dimensions[^1];
        if (VocabSize <= 0) throw new PeftOnnxException($"output '{Seq2SeqContract.Logits}' has no fixed vocabulary dimension");
    }

    /// <summary>Sessions of <paramref name="kind"/> on {dir}/encoder_model.onnx and {dir}/decoder_model.onnx.</summary>
    public static Seq2SeqForward Open(string dir, ForwardSessionKind kind = ForwardSessionKind.Cpu) =>
        Open(Path.Combine(dir, Seq2SeqContract.EncoderFile), Path.Combine(dir, Seq2SeqContract.DecoderFile), kind);

    public static Seq2SeqForward Open(string encoderPath, string decoderPath, ForwardSessionKind kind = ForwardSessionKind.Cpu)
    {
        var encoder = OrtSessions.Open(encoderPath, kind);
        InferenceSession? decoder = null;
        try
        {
            decoder = OrtSessions.Open(decoderPath, kind);
            return new Seq2SeqForward(new Seq2SeqGraph(encoder, decoder, Path.GetDirectoryName(Path.GetFullPath(decoderPath))!));
        }
        catch
        {
            decoder?.Dispose();
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>Element type of past_key_values.{i}.decoder.* (float, or float16 for fp16 exports).</summary>
    public TensorElementType SelfCacheType => _graph.CacheType;

    /// <summary>Element type of past_key_values.{i}.encoder.*.</summary>
    public TensorElementType CrossCacheType => _graph.CrossCacheType;

    public int NumDecoderLayers => _graph.NumLayers;
    public int NumHeads => _graph.Heads;
    public int HeadDim => _graph.HeadDim;
    public int DModel { get; }
    public int VocabSize => _graph.VocabSize;

    /// <summary>Virtual tokens of a baked soft prompt or prefix (<see cref="OnnxMetadataKeys.NumVirtualTokens"/>), else 0.</summary>
    public int VirtualTokens =>
        _graph.Decoder.ModelMetadata.CustomMetadataMap.TryGetValue(OnnxMetadataKeys.NumVirtualTokens, out var text)
        && int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count) ? count : 0;

    /// <summary>An empty self-attention cache (past length 0) for the first decoder step.</summary>
    public KeyValueCache EmptyCache(int batch) => KeyValueCache.Empty(batch, NumDecoderLayers);

    /// <summary>Runs the encoder on <paramref name="inputIds"/> and <paramref name="attentionMask"/> (both [batch, length]).</summary>
    public Seq2SeqEncoderOutput Encode(long[] inputIds, long[] attentionMask, int batch) => Encode(inputIds, attentionMask, batch, adapterIndices: null);

    /// <summary>True when both graphs take <see cref="Seq2SeqContract.AdapterIndex"/> (a multi-adapter export).</summary>
    public bool TakesAdapterIndex => _graph.TakesAdapterIndex;

    /// <summary>
    /// As above, each row with its adapter of a multi-adapter export: <paramref name="adapterIndices"/> [batch] (-1 = the
    /// base), kept in the result for <see cref="Decode"/>.
    /// </summary>
    public Seq2SeqEncoderOutput Encode(long[] inputIds, long[] attentionMask, int batch, long[]? adapterIndices)
    {
        if (batch <= 0 || inputIds.Length % batch != 0) throw new ArgumentException("input_ids length is not a multiple of batch");
        int length = inputIds.Length / batch;
        if (attentionMask.Length != inputIds.Length) throw new ArgumentException($"attention_mask must be [{batch}, {length}]");
        var outputNames = new List<string> { Seq2SeqContract.LastHiddenState };
        outputNames.AddRange(_graph.CrossOutputNames);
        using var ids = OrtValue.CreateTensorValueFromMemory(inputIds, [batch, length]);
        using var mask = OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, length]);
        using var adapters = adapterIndices == null ? null : _graph.AdapterIndexValue(adapterIndices, batch);
        string[] inputNames = adapters == null ? [Seq2SeqContract.InputIds, Seq2SeqContract.AttentionMask] : [Seq2SeqContract.InputIds, Seq2SeqContract.AttentionMask, Seq2SeqContract.AdapterIndex];
        OrtValue[] inputs = adapters == null ? [ids, mask] : [ids, mask, adapters];
        using var runOptions = new RunOptions();
        using var outputs = _graph.Encoder.Run(runOptions, inputNames, inputs, outputNames);
        var hiddenShape = outputs[0].GetTensorTypeAndShape().Shape;
        if (hiddenShape.Length != 3 || hiddenShape[0] != batch || hiddenShape[1] < length || hiddenShape[2] != DModel)
            throw new PeftOnnxException($"output '{Seq2SeqContract.LastHiddenState}' has shape [{string.Join(", ", hiddenShape)}], expected [{batch}, >= {length}, {DModel}]");
        int crossLength = (int)hiddenShape[1];
        var hidden = FloatTensors.Read(outputs[0], [batch, crossLength, DModel], Seq2SeqContract.LastHiddenState);
        var keys = new float[NumDecoderLayers][];
        var values = new float[NumDecoderLayers][];
        long[] crossShape = [batch, NumHeads, crossLength, HeadDim];
        for (int i = 0; i < NumDecoderLayers; i++)
        {
            keys[i] = FloatTensors.Read(outputs[1 + 2 * i], crossShape, _graph.CrossOutputNames[2 * i]);
            values[i] = FloatTensors.Read(outputs[2 + 2 * i], crossShape, _graph.CrossOutputNames[2 * i + 1]);
        }
        return new Seq2SeqEncoderOutput(batch, length, (long[])attentionMask.Clone(), hidden, keys, values) { CrossLength = crossLength, AdapterIndices = adapterIndices };
    }

    /// <summary>
    /// One decoder run on <paramref name="decoderInputIds"/> [batch, seq] after <paramref name="past"/> (null = first
    /// step), attending to <paramref name="encoded"/>.
    /// </summary>
    public Seq2SeqStep Decode(long[] decoderInputIds, Seq2SeqEncoderOutput encoded, KeyValueCache? past = null)
    {
        int batch = encoded.Batch;
        past ??= EmptyCache(batch);
        if (past.Batch != batch) throw new ArgumentException($"cache batch {past.Batch} != {batch}");
        if (decoderInputIds.Length % batch != 0) throw new ArgumentException("decoder input_ids length is not a multiple of batch");
        int seq = decoderInputIds.Length / batch;
        int total = past.Length + seq;

        var names = new List<string> { Seq2SeqContract.InputIds, Seq2SeqContract.EncoderAttentionMask };
        var values = new List<OrtValue>();
        var outputNames = new List<string> { Seq2SeqContract.Logits };
        try
        {
            values.Add(OrtValue.CreateTensorValueFromMemory(decoderInputIds, [batch, seq]));
            values.Add(OrtValue.CreateTensorValueFromMemory(encoded.AttentionMask, [batch, encoded.Length]));
            if (encoded.AdapterIndices != null)
            {
                names.Add(Seq2SeqContract.AdapterIndex);
                values.Add(_graph.AdapterIndexValue(encoded.AdapterIndices, batch));
            }
            long[] pastShape = [batch, NumHeads, past.Length, HeadDim];
            long[] crossShape = [batch, NumHeads, encoded.CrossLength, HeadDim];
            for (int i = 0; i < NumDecoderLayers; i++)
            {
                names.Add(_graph.PastSelfNames[2 * i]);
                values.Add(FloatTensors.Tensor(past.Keys[i], pastShape, SelfCacheType));
                names.Add(_graph.PastSelfNames[2 * i + 1]);
                values.Add(FloatTensors.Tensor(past.Values[i], pastShape, SelfCacheType));
                names.Add(_graph.PastCrossNames[2 * i]);
                values.Add(FloatTensors.Tensor(encoded.CrossKeys[i], crossShape, CrossCacheType));
                names.Add(_graph.PastCrossNames[2 * i + 1]);
                values.Add(FloatTensors.Tensor(encoded.CrossValues[i], crossShape, CrossCacheType));
                outputNames.Add(_graph.PresentSelfNames[2 * i]);
                outputNames.Add(_graph.PresentSelfNames[2 * i + 1]);
            }
            using var runOptions = new RunOptions();
            using var outputs = _graph.Decoder.Run(runOptions, names, values, outputNames);
            var logits = FloatTensors.Read(outputs[0], [batch, seq, VocabSize], Seq2SeqContract.Logits);
            var keys = new float[NumDecoderLayers][];
            var vals = new float[NumDecoderLayers][];
            long[] presentShape = [batch, NumHeads, total, HeadDim];
            for (int i = 0; i < NumDecoderLayers; i++)
            {
                keys[i] = FloatTensors.Read(outputs[1 + 2 * i], presentShape, _graph.PresentSelfNames[2 * i]);
                vals[i] = FloatTensors.Read(outputs[2 + 2 * i], presentShape, _graph.PresentSelfNames[2 * i + 1]);
            }
            return new Seq2SeqStep(logits, [batch, seq, VocabSize], new KeyValueCache(batch, total, keys, vals));
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Teacher-forced logits [batch, decoder_seq, vocab]: the encoder, then the decoder on the whole decoder input.</summary>
    public Seq2SeqStep Forward(long[] inputIds, long[] attentionMask, long[] decoderInputIds, int batch, long[]? adapterIndices = null) =>
        Decode(decoderInputIds, Encode(inputIds, attentionMask, batch, adapterIndices));

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
        KeyValueCache? cache = null;
        for (int n = 0; n < maxNewTokens && !finished.All(f => f); n++)
        {
            var step = Decode(next, encoded, cache);
            cache = step.Present;
            for (int b = 0; b < batch; b++)
            {
                long token = finished[b] ? padId : TokenChooser.ArgMax(step.Logits.AsSpan(b * VocabSize, VocabSize));
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

    public void Dispose() => _graph.Dispose();
}
