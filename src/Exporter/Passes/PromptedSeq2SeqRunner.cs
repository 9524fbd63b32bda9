using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>What the encoder returned: cross keys/values [batch, heads, CrossLength, head_dim] per decoder layer; <see cref="AttentionMask"/> [batch, InputLength] is the caller's.</summary>
public sealed record PromptedEncoding(int Batch, int InputLength, int CrossLength, long[] AttentionMask, float[][] CrossKeys, float[][] CrossValues);

/// <summary>
/// Runs an encoder-decoder export whose encoder output may be longer than its input (a baked encoder soft prompt:
/// cross keys/values of prompt + input length, encoder_attention_mask still the caller's [batch, input]) on ORT's
/// CPU provider. Same contract as <see cref="Seq2SeqRunner"/> otherwise; for export checks and tests.
/// </summary>
public sealed class PromptedSeq2SeqRunner : IDisposable
{
    private readonly InferenceSession _encoder;
    private readonly InferenceSession _decoder;

    private PromptedSeq2SeqRunner(InferenceSession encoder, InferenceSession decoder)
    {
        _encoder = encoder;
        _decoder = decoder;
        NumDecoderLayers = decoder.InputMetadata.Keys.Count(k => k.StartsWith("past_key_values.", StringComparison.Ordinal) && k.EndsWith(".decoder.key", StringComparison.Ordinal));
        if (NumDecoderLayers == 0) throw new PeftOnnxException("decoder has no past_key_values.{i}.decoder.key inputs (expected the encoder-decoder interface)");
        var past = decoder.InputMetadata[Seq2SeqInterface.PastSelfKey(0)].Dimensions;
        NumHeads = past[1];
        HeadDim = past[3];
        DModel = encoder.OutputMetadata[Seq2SeqInterface.LastHiddenState].Dimensions[^1];
        VocabSize = decoder.OutputMetadata[Seq2SeqInterface.Logits].Dimensions[^1];
    }

    public int NumDecoderLayers { get; }
    public int NumHeads { get; }
    public int HeadDim { get; }
    public int DModel { get; }
    public int VocabSize { get; }

    public static PromptedSeq2SeqRunner Open(string dir)
    {
        var encoder = OnnxCheck.CreateSession(Path.Combine(dir, Seq2SeqInterface.EncoderFile));
        try
        {
            return new PromptedSeq2SeqRunner(encoder, OnnxCheck.CreateSession(Path.Combine(dir, Seq2SeqInterface.DecoderFile)));
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    public PromptedEncoding Encode(long[] inputIds, long[] attentionMask, int batch)
    {
        int length = inputIds.Length / batch;
        var outputNames = new List<string>();
        for (int i = 0; i < NumDecoderLayers; i++)
        {
            outputNames.Add(Seq2SeqInterface.PresentCrossKey(i));
            outputNames.Add(Seq2SeqInterface.PresentCrossValue(i));
        }
        using var ids = OrtValue.CreateTensorValueFromMemory(inputIds, [batch, length]);
        using var mask = OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, length]);
        using var runOptions = new RunOptions();
        using var outputs = _encoder.Run(runOptions, [Seq2SeqInterface.InputIds, Seq2SeqInterface.AttentionMask], [ids, mask], outputNames);
        var shape = outputs[0].GetTensorTypeAndShape().Shape;
        if (shape.Length != 4 || shape[0] != batch || shape[1] != NumHeads || shape[3] != HeadDim || shape[2] < length)
            throw new PeftOnnxException($"present.0.encoder.key has shape [{string.Join(", ", shape)}], expected [{batch}, {NumHeads}, >= {length}, {HeadDim}]");
        var keys = new float[NumDecoderLayers][];
        var values = new float[NumDecoderLayers][];
        for (int i = 0; i < NumDecoderLayers; i++)
        {
            keys[i] = outputs[2 * i].GetTensorDataAsSpan<float>().ToArray();
            values[i] = outputs[2 * i + 1].GetTensorDataAsSpan<float>().ToArray();
        }
        return new PromptedEncoding(batch, length, (int)shape[2], (long[])attentionMask.Clone(), keys, values);
    }

    public Seq2SeqStep Decode(long[] decoderInputIds, PromptedEncoding encoded, CausalLmCache? past = null)
    {
        int batch = encoded.Batch;
        past ??= new CausalLmCache(batch, 0, Enumerable.Range(0, NumDecoderLayers).Select(_ => Array.Empty<float>()).ToArray(),
            Enumerable.Range(0, NumDecoderLayers).Select(_ => Array.Empty<float>()).ToArray());
        int seq = decoderInputIds.Length / batch;
        int total = past.Length + seq;
        var names = new List<string> { Seq2SeqInterface.InputIds, Seq2SeqInterface.EncoderAttentionMask };
        var values = new List<OrtValue>();
        var outputNames = new List<string> { Seq2SeqInterface.Logits };
        try
        {
            values.Add(OrtValue.CreateTensorValueFromMemory(decoderInputIds, [batch, seq]));
            values.Add(OrtValue.CreateTensorValueFromMemory(encoded.AttentionMask, [batch, encoded.InputLength]));
            long[] pastShape = [batch, NumHeads, past.Length, HeadDim];
            long[] crossShape = [batch, NumHeads, encoded.CrossLength, HeadDim];
            for (int i = 0; i < NumDecoderLayers; i++)
            {
                names.AddRange([Seq2SeqInterface.PastSelfKey(i), Seq2SeqInterface.PastSelfValue(i), Seq2SeqInterface.PastCrossKey(i), Seq2SeqInterface.PastCrossValue(i)]);
                values.Add(OrtValue.CreateTensorValueFromMemory(past.Keys[i], pastShape));
                values.Add(OrtValue.CreateTensorValueFromMemory(past.Values[i], pastShape));
                values.Add(OrtValue.CreateTensorValueFromMemory(encoded.CrossKeys[i], crossShape));
                values.Add(OrtValue.CreateTensorValueFromMemory(encoded.CrossValues[i], crossShape));
                outputNames.Add(Seq2SeqInterface.PresentSelfKey(i));
                outputNames.Add(Seq2SeqInterface.PresentSelfValue(i));
            }
            using var runOptions = new RunOptions();
            using var outputs = _decoder.Run(runOptions, names, values, outputNames);
            var logitsShape = outputs[0].GetTensorTypeAndShape().Shape;
            if (!logitsShape.SequenceEqual(new long[] { batch, seq, VocabSize }))
                throw new PeftOnnxException($"logits have shape [{string.Join(", ", logitsShape)}], expected [{batch}, {seq}, {VocabSize}]");
            var keys = new float[NumDecoderLayers][];
            var vals = new float[NumDecoderLayers][];
            for (int i = 0; i < NumDecoderLayers; i++)
            {
                keys[i] = outputs[1 + 2 * i].GetTensorDataAsSpan<float>().ToArray();
                vals[i] = outputs[2 + 2 * i].GetTensorDataAsSpan<float>().ToArray();
                if (keys[i].LongLength != (long)batch * NumHeads * total * HeadDim)
                    throw new PeftOnnxException($"present.{i}.decoder.key has {keys[i].LongLength} values, expected [{batch}, {NumHeads}, {total}, {HeadDim}]");
            }
            return new Seq2SeqStep(outputs[0].GetTensorDataAsSpan<float>().ToArray(), logitsShape, new CausalLmCache(batch, total, keys, vals));
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Teacher-forced logits [batch, decoder_seq, vocab].</summary>
    public Seq2SeqStep Forward(long[] inputIds, long[] attentionMask, long[] decoderInputIds, int batch) =>
        Decode(decoderInputIds, Encode(inputIds, attentionMask, batch));

    /// <summary>Greedy decoding as transformers' generate (see <see cref="Seq2SeqRunner.Greedy"/>). Returns [batch][1 + steps].</summary>
    public long[][] Greedy(long[] inputIds, long[] attentionMask, int batch, int maxNewTokens, long decoderStartId, IReadOnlyCollection<long> eosIds, long padId)
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
                var row = step.Logits.AsSpan(b * VocabSize, VocabSize);
                int best = 0;
                for (int v = 1; v < row.Length; v++) if (row[v] > row[best]) best = v;
                long token = finished[b] ? padId : best;
                sequences[b].Add(token);
                next[b] = token;
                if (eosIds.Contains(token)) finished[b] = true;
            }
        }
        return sequences.Select(s => s.ToArray()).ToArray();
    }

    /// <summary>
    /// The export check of <see cref="OnnxCheck.Seq2Seq"/> for exports with a longer encoder output: 2 rows x 4
    /// tokens (second right-padded), a 2-token first decoder step, one cached step; shapes and finiteness.
    /// </summary>
    public static Seq2SeqCheckReport Check(string dir)
    {
        try
        {
            using var runner = Open(dir);
            const int batch = 2, length = 4;
            var vocab = runner.VocabSize;
            long[] ids = [5 % vocab, 7 % vocab, 42 % vocab, 1 % vocab, 3 % vocab, 9 % vocab, 0, 0];
            long[] mask = [1, 1, 1, 1, 1, 1, 0, 0];
            var encoded = runner.Encode(ids, mask, batch);
            for (int i = 0; i < runner.NumDecoderLayers; i++) { Finite(encoded.CrossKeys[i], "cross keys"); Finite(encoded.CrossValues[i], "cross values"); }
            var first = runner.Decode([0, 11 % vocab, 0, 13 % vocab], encoded);
            Finite(first.Logits, "first decoder step logits");
            var next = runner.Decode([17 % vocab, 19 % vocab], encoded, first.Present);
            Finite(next.Logits, "cached decoder step logits");
            return new Seq2SeqCheckReport(runner.NumDecoderLayers, runner.NumHeads, runner.HeadDim, runner.DModel, vocab,
                [batch, encoded.CrossLength, runner.DModel], first.LogitsShape, next.LogitsShape);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new PeftOnnxException($"{dir}: ONNX Runtime rejected the encoder-decoder models: {ex.Message.Split('\n')[0]}", ex);
        }
    }

    private static void Finite(float[] values, string what)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) throw new PeftOnnxException($"{what}: value {values[i]} at flat index {i}");
    }

    public void Dispose()
    {
        _encoder.Dispose();
        _decoder.Dispose();
    }
}
