using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>Key/value cache of a causal-LM graph: per layer [batch, heads, length, head_dim] float32.</summary>
public sealed record CausalLmCache(int Batch, int Length, float[][] Keys, float[][] Values);

/// <summary>One run of a causal-LM graph: logits [batch, seq, vocab] and the present cache.</summary>
public sealed record CausalLmStep(float[] Logits, long[] LogitsShape, CausalLmCache Present);

/// <summary>
/// Runs a graph with the causal-LM interface (input_ids, attention_mask, past_key_values.{i}.key|value ->
/// logits, present.{i}.key|value) on ORT's CPU provider, copying tensors in and out. For export checks and
/// tests, not for serving (Runtime keeps the cache in OrtValues).
/// </summary>
public sealed class CausalLmRunner : IDisposable
{
    private static readonly Regex PastKey = new(@"^past_key_values\.(\d+)\.key$", RegexOptions.CultureInvariant);

    private readonly InferenceSession _session;

    public CausalLmRunner(InferenceSession session)
    {
        _session = session;
        var inputs = session.InputMetadata;
        foreach (var required in new[] { "input_ids", "attention_mask" })
            if (!inputs.ContainsKey(required)) throw new PeftOnnxException($"model has no input '{required}' (expected the causal-LM interface)");
        NumLayers = inputs.Keys.Count(k => PastKey.IsMatch(k));
        if (NumLayers == 0) throw new PeftOnnxException("model has no past_key_values.{i}.key inputs (expected the causal-LM interface)");
        var past = inputs["past_key_values.0.key"].Dimensions;
        if (past.Length != 4 || past[1] <= 0 || past[3] <= 0)
            throw new PeftOnnxException($"past_key_values.0.key has shape [{string.Join(", ", past)}], expected [batch, heads, past_seq, head_dim] with fixed heads and head_dim");
        NumHeads = past[1];
        HeadDim = past[3];
        if (!session.OutputMetadata.TryGetValue("logits", out var logits)) throw new PeftOnnxException("model has no output 'logits'");
        VocabSize = logits.Dimensions[^1];
        if (VocabSize <= 0) throw new PeftOnnxException("output 'logits' has no fixed vocabulary dimension");
        HasPositionIds = inputs.ContainsKey(Graphs.CausalLmInterface.PositionIds);
        CacheType = inputs["past_key_values.0.key"].ElementDataType;
    }

    /// <summary>Element type of past_key_values / present (float, or float16 for fp16 exports; converted at the boundary).</summary>
    public TensorElementType CacheType { get; }

    public int NumLayers { get; }
    public int NumHeads { get; }
    public int HeadDim { get; }
    public int VocabSize { get; }

    /// <summary>True when the graph takes position_ids (GPT-2, LLaMA); Run then feeds them from the mask unless given.</summary>
    public bool HasPositionIds { get; }
    public InferenceSession Session => _session;

    /// <summary>CPU session for a model file (external data is found beside it).</summary>
    public static CausalLmRunner Open(string modelPath) => new(OnnxCheck.CreateSession(modelPath));

    /// <summary>An empty cache (past length 0) for prefill.</summary>
    public CausalLmCache EmptyCache(int batch) =>
        new(batch, 0, Enumerable.Range(0, NumLayers).Select(_ => Array.Empty<float>()).ToArray(),
            Enumerable.Range(0, NumLayers).Select(_ => Array.Empty<float>()).ToArray());

    /// <summary>
    /// One forward: <paramref name="inputIds"/> [batch, seq], <paramref name="attentionMask"/> [batch, past + seq],
    /// <paramref name="past"/> the cache from the previous step (null = empty).
    /// </summary>
    public CausalLmStep Run(long[] inputIds, long[] attentionMask, int batch, CausalLmCache? past = null) =>
        Run(inputIds, attentionMask, batch, past, positionIds: null);

    /// <summary>
    /// One forward with explicit <paramref name="positionIds"/> [batch, seq] for graphs that take them; null feeds
    /// <see cref="Graphs.CausalLmInterface.PositionIdsFromMask"/> (the generation contract). Ignored by graphs without the input.
    /// </summary>
    public CausalLmStep Run(long[] inputIds, long[] attentionMask, int batch, CausalLmCache? past, long[]? positionIds)
    {
        past ??= EmptyCache(batch);
        if (past.Batch != batch) throw new ArgumentException($"cache batch {past.Batch} != {batch}");
        if (inputIds.Length % batch != 0) throw new ArgumentException("input_ids length is not a multiple of batch");
        int seq = inputIds.Length / batch;
        // attention_mask covers the real tokens; a baked prompt's cache also holds its virtual tokens (from the first step on)
        if (attentionMask.Length % batch != 0 || attentionMask.Length / batch < seq) throw new ArgumentException($"attention_mask must be [{batch}, >= {seq}]");
        int total = attentionMask.Length / batch;

        var names = new List<string> { "input_ids", "attention_mask" };
        var values = new List<OrtValue>();
        var outputNames = new List<string> { "logits" };
        try
        {
            values.Add(OrtValue.CreateTensorValueFromMemory(inputIds, [batch, seq]));
            values.Add(OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, total]));
            if (HasPositionIds)
            {
                positionIds ??= Graphs.CausalLmInterface.PositionIdsFromMask(attentionMask, batch, seq);
                if (positionIds.Length != batch * seq) throw new ArgumentException($"position_ids must be [{batch}, {seq}]");
                names.Add(Graphs.CausalLmInterface.PositionIds);
                values.Add(OrtValue.CreateTensorValueFromMemory(positionIds, [batch, seq]));
            }
            long[] pastShape = [batch, NumHeads, past.Length, HeadDim];
            for (int i = 0; i < NumLayers; i++)
            {
                names.Add($"past_key_values.{i}.key");
                values.Add(Seq2SeqRunner.Tensor(past.Keys[i], pastShape, CacheType));
                names.Add($"past_key_values.{i}.value");
                values.Add(Seq2SeqRunner.Tensor(past.Values[i], pastShape, CacheType));
                outputNames.Add($"present.{i}.key");
                outputNames.Add($"present.{i}.value");
            }
            using var runOptions = new RunOptions();
            using var outputs = _session.Run(runOptions, names, values, outputNames);
            var logits = outputs[0];
            var logitsShape = logits.GetTensorTypeAndShape().Shape;
            var keys = new float[NumLayers][];
            var vals = new float[NumLayers][];
            long presentLength = outputs[1].GetTensorTypeAndShape().Shape[2];
            if (past.Length > 0 ? presentLength != past.Length + seq : presentLength < seq)
                throw new PeftOnnxException($"output 'present.0.key' holds {presentLength} positions after a past of {past.Length} and {seq} new tokens");
            long[] presentShape = [batch, NumHeads, presentLength, HeadDim];
            for (int i = 0; i < NumLayers; i++)
            {
                keys[i] = Read(outputs[1 + 2 * i], presentShape, $"present.{i}.key");
                vals[i] = Read(outputs[2 + 2 * i], presentShape, $"present.{i}.value");
            }
            return new CausalLmStep(Seq2SeqRunner.ToFloat(logits), logitsShape, new CausalLmCache(batch, (int)presentLength, keys, vals));
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static float[] Read(OrtValue value, long[] expectedShape, string name)
    {
        var shape = value.GetTensorTypeAndShape().Shape;
        if (!shape.SequenceEqual(expectedShape))
            throw new PeftOnnxException($"output '{name}' has shape [{string.Join(", ", shape)}], expected [{string.Join(", ", expectedShape)}]");
        return Seq2SeqRunner.ToFloat(value);
    }

    public void Dispose() => _session.Dispose();
}

/// <summary>What <see cref="OnnxCheck.CausalLm"/> ran.</summary>
public sealed record OnnxCheckReport(int NumLayers, int NumHeads, int HeadDim, int VocabSize, long[] PrefillLogitsShape, long[] DecodeLogitsShape);

/// <summary>Loads a written model in ONNX Runtime (CPU provider) and runs it on a small batch.</summary>
public static class OnnxCheck
{
    /// <summary>
    /// Session options for the CPU provider. When the model is loaded from bytes, pass the folder that holds
    /// its external data file (ORT otherwise cannot resolve relative locations).
    /// </summary>
    public static SessionOptions CpuOptions(string? externalDataFolder = null)
    {
        var o = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        if (externalDataFolder != null) o.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", Path.GetFullPath(externalDataFolder));
        return o;
    }

    /// <summary>Loads a model file; external data is resolved relative to the file's folder.</summary>
    public static InferenceSession CreateSession(string modelPath)
    {
        using var options = CpuOptions(Path.GetDirectoryName(Path.GetFullPath(modelPath)));
        return new InferenceSession(modelPath, options);
    }

    /// <summary>
    /// A session on the CUDA execution provider (device 0) for `forward --onnx --device cuda`: inputs and outputs stay
    /// on the host (ORT copies them), so callers are the CPU ones. Throws <see cref="PeftOnnxException"/> ("cuda: ...")
    /// when the provider or its CUDA libraries cannot load.
    /// </summary>
    public static InferenceSession CreateCudaSession(string modelPath)
    {
        using var options = CpuOptions(Path.GetDirectoryName(Path.GetFullPath(modelPath)));
        try
        {
            // TF32 off, as the Runtime's default: this session checks logits against the CPU's and the fixtures.
            using var cuda = new OrtCUDAProviderOptions();
            cuda.UpdateOptions(new Dictionary<string, string> { ["device_id"] = "0", ["use_tf32"] = "0" });
            options.AppendExecutionProvider_CUDA(cuda);
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            throw new PeftOnnxException($"cuda: the CUDA execution provider cannot start: {ex.Message.Split('\n')[0].Trim()}", ex);
        }
        return new InferenceSession(modelPath, options);
    }

    /// <summary>
    /// Session options for the check an export runs before reporting success: the CPU provider without weight
    /// pre-packing (MLAS would copy every MatMul weight into a packed buffer: the model's size again in memory, and most
    /// of the session's start-up time) and without graph optimizations (the check runs our graph as written; serving
    /// sessions optimize), so ONNX Runtime uses the memory-mapped external data in place: a float32 check holds the
    /// model's weights once (as page-cache pages of the data file just written) plus activations.
    /// </summary>
    public static SessionOptions CheckOptions(string externalDataFolder)
    {
        var o = CpuOptions(externalDataFolder);
        o.AddSessionConfigEntry("session.disable_prepacking", "1");
        o.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
        // two short runs: idle pool threads sleep instead of spinning (spinning only burns CPU others could use)
        o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        // freed buffers go back to the system at once: an fp16 model runs on the CPU provider through Casts of its weights
        // to float32, which an arena would keep for the whole session
        o.EnableCpuMemArena = false;
        return o;
    }

    /// <summary>A session for the export check (<see cref="CheckOptions"/>) on a model file.</summary>
    public static InferenceSession CreateCheckSession(string modelPath)
    {
        using var options = CheckOptions(Path.GetDirectoryName(Path.GetFullPath(modelPath))!);
        return new InferenceSession(modelPath, options);
    }

    /// <summary>Loads a model from bytes, its external data from <paramref name="externalDataFolder"/>.</summary>
    public static InferenceSession CreateSession(byte[] model, string externalDataFolder)
    {
        using var options = CpuOptions(externalDataFolder);
        return new InferenceSession(model, options);
    }

    /// <summary>
    /// Checks a causal-LM graph: a prefill of 2 rows x 3 tokens (second row right-padded) with an empty past,
    /// then one decode step feeding present back as past. Output shapes must match the interface and every
    /// logit and cache value must be finite. Throws <see cref="PeftOnnxException"/> otherwise.
    /// </summary>
    public static OnnxCheckReport CausalLm(string modelPath)
    {
        try
        {
            using var runner = new CausalLmRunner(CreateCheckSession(modelPath));
            const int batch = 2, seq = 3;
            var vocab = runner.VocabSize;
            long[] ids = [1 % vocab, 7 % vocab, 42 % vocab, 3 % vocab, 5 % vocab, 0];
            long[] mask = [1, 1, 1, 1, 1, 0];
            var prefill = runner.Run(ids, mask, batch);
            Expect(prefill.LogitsShape, [batch, seq, vocab], "prefill logits");
            Finite(prefill.Logits, "prefill logits");
            Finite(prefill.Present, "prefill present");

            long[] next = [9 % vocab, 11 % vocab];
            long[] mask2 = [1, 1, 1, 1, 1, 1, 0, 1];
            var decode = runner.Run(next, mask2, batch, prefill.Present);
            Expect(decode.LogitsShape, [batch, 1, vocab], "decode logits");
            Finite(decode.Logits, "decode logits");
            Finite(decode.Present, "decode present");
            return new OnnxCheckReport(runner.NumLayers, runner.NumHeads, runner.HeadDim, vocab, prefill.LogitsShape, decode.LogitsShape);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new PeftOnnxException($"{modelPath}: ONNX Runtime rejected the model: {ex.Message.Split('\n')[0]}", ex);
        }
    }

    /// <summary>
    /// Checks an encoder-decoder export (encoder_model.onnx + decoder_model.onnx): encodes 2 rows x 4 tokens (second
    /// row right-padded), runs a first decoder step of 2 tokens with an empty self cache, then one cached step.
    /// Output shapes must match the interface and every value must be finite. Throws <see cref="PeftOnnxException"/> otherwise.
    /// </summary>
    public static Seq2SeqCheckReport Seq2Seq(string encoderPath, string decoderPath)
    {
        try
        {
            using var runner = OpenSeq2SeqForCheck(encoderPath, decoderPath);
            const int batch = 2;
            var vocab = runner.VocabSize;
            long[] ids = [5 % vocab, 7 % vocab, 42 % vocab, 1 % vocab, 3 % vocab, 9 % vocab, 0, 0];
            long[] mask = [1, 1, 1, 1, 1, 1, 0, 0];
            var encoded = runner.Encode(ids, mask, batch);
            Finite(encoded.LastHiddenState, "last_hidden_state");
            for (int i = 0; i < runner.NumDecoderLayers; i++)
            {
                Finite(encoded.CrossKeys[i], $"present.{i}.encoder.key");
                Finite(encoded.CrossValues[i], $"present.{i}.encoder.value");
            }

            var first = runner.Decode([0, 11 % vocab, 0, 13 % vocab], encoded);
            Expect(first.LogitsShape, [batch, 2, vocab], "first decoder step logits");
            Finite(first.Logits, "first decoder step logits");
            Finite(first.Present, "first decoder step present");

            var next = runner.Decode([17 % vocab, 19 % vocab], encoded, first.Present);
            Expect(next.LogitsShape, [batch, 1, vocab], "cached decoder step logits");
            Finite(next.Logits, "cached decoder step logits");
            Finite(next.Present, "cached decoder step present");
            return new Seq2SeqCheckReport(runner.NumDecoderLayers, runner.NumHeads, runner.HeadDim, runner.DModel, vocab,
                [batch, encoded.CrossLength, runner.DModel], first.LogitsShape, next.LogitsShape);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new PeftOnnxException($"{Path.GetDirectoryName(Path.GetFullPath(decoderPath))}: ONNX Runtime rejected the encoder-decoder models: {ex.Message.Split('\n')[0]}", ex);
        }
    }

    private static Seq2SeqRunner OpenSeq2SeqForCheck(string encoderPath, string decoderPath)
    {
        var encoder = CreateCheckSession(encoderPath);
        InferenceSession? decoder = null;
        try
        {
            decoder = CreateCheckSession(decoderPath);
            return new Seq2SeqRunner(encoder, decoder);
        }
        catch
        {
            decoder?.Dispose();
            encoder.Dispose();
            throw;
        }
    }

    private static void Expect(long[] shape, long[] expected, string what)
    {
        if (!shape.SequenceEqual(expected))
            throw new PeftOnnxException($"{what}: shape [{string.Join(", ", shape)}], expected [{string.Join(", ", expected)}]");
    }

    private static void Finite(float[] values, string what)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) throw new PeftOnnxException($"{what}: value {values[i]} at flat index {i}");
    }

    private static void Finite(CausalLmCache cache, string what)
    {
        for (int i = 0; i < cache.Keys.Length; i++)
        {
            Finite(cache.Keys[i], $"{what}.{i}.key");
            Finite(cache.Values[i], $"{what}.{i}.value");
        }
    }
}
