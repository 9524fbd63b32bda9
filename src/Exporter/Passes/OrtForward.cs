using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// Runs an exported folder with ONNX Runtime (CPU provider) whatever its float type (fp32 or fp16 export): the
/// KV cache travels as the OrtValues the graph returned, so no float conversion is needed in between; logits are
/// always float32. Used by `forward --onnx`, by the fp16 export check and by tests.
/// </summary>
public sealed class OrtForward : IDisposable
{
    private readonly InferenceSession? _decoderOnly;
    private readonly InferenceSession? _encoder;
    private readonly InferenceSession? _decoder;

    private OrtForward(InferenceSession? decoderOnly, InferenceSession? encoder, InferenceSession? decoder)
    {
        _decoderOnly = decoderOnly;
        _encoder = encoder;
        _decoder = decoder;
    }

    /// <summary>True for an encoder-decoder folder (encoder_model.onnx + decoder_model.onnx).</summary>
    public bool IsEncoderDecoder => _encoder != null;

    /// <summary>Virtual tokens of a baked soft prompt or prefix (the export's peft.num_virtual_tokens metadata), else 0.</summary>
    public int VirtualTokens =>
        (_decoderOnly ?? _decoder)!.ModelMetadata.CustomMetadataMap.TryGetValue("peft.num_virtual_tokens", out var text)
        && int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count) ? count : 0;

    public int VocabSize => (int)(_decoderOnly ?? _decoder)!.OutputMetadata[CausalLmInterface.Logits].Dimensions[^1];

    /// <summary>
    /// Opens model.onnx, or encoder_model.onnx + decoder_model.onnx, in <paramref name="dir"/>; <paramref name="forCheck"/>:
    /// with the export check's session options (<see cref="OnnxCheck.CheckOptions"/>); <paramref name="cuda"/>: on the
    /// CUDA execution provider (<see cref="OnnxCheck.CreateCudaSession"/>).
    /// </summary>
    public static OrtForward Open(string dir, bool forCheck = false, bool cuda = false)
    {
        Func<string, InferenceSession> session = cuda ? OnnxCheck.CreateCudaSession : forCheck ? OnnxCheck.CreateCheckSession : OnnxCheck.CreateSession;
        try
        {
            if (File.Exists(Path.Combine(dir, OnnxExport.ModelFile))) return new(session(Path.Combine(dir, OnnxExport.ModelFile)), null, null);
            var enc = Path.Combine(dir, Seq2SeqInterface.EncoderFile);
            var dec = Path.Combine(dir, Seq2SeqInterface.DecoderFile);
            if (File.Exists(enc) && File.Exists(dec))
            {
                var encoder = session(enc);
                try { return new(null, encoder, session(dec)); }
                catch { encoder.Dispose(); throw; }
            }
        }
        catch (OnnxRuntimeException ex)
        {
            throw new PeftOnnxException($"{dir}: ONNX Runtime could not load the exported model: {ex.Message.Split('\n')[0]}", ex);
        }
        throw new PeftOnnxException($"{dir}: no {OnnxExport.ModelFile} (decoder-only) or {Seq2SeqInterface.EncoderFile} + {Seq2SeqInterface.DecoderFile} (encoder-decoder) found");
    }

    /// <summary>One decoder-only model file (model.onnx or the prefix-in-cache graph beside it); options as <see cref="Open"/>.</summary>
    public static OrtForward OpenCausal(string modelPath, bool forCheck = false)
    {
        try
        {
            return new(forCheck ? OnnxCheck.CreateCheckSession(modelPath) : OnnxCheck.CreateSession(modelPath), null, null);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new PeftOnnxException($"{modelPath}: ONNX Runtime could not load the exported model: {ex.Message.Split('\n')[0]}", ex);
        }
    }

    /// <summary>
    /// Decoder-only prefill with an empty cache: logits [batch, seq, vocab] for input_ids / attention_mask [batch, seq];
    /// position_ids (where the graph takes them) from the mask, as <see cref="CausalLmInterface.PositionIdsFromMask"/>.
    /// With <paramref name="past"/> (the previous call's present values) the ids continue that sequence and the mask
    /// covers past + new tokens. The returned cache replaces (and disposes nothing of) the one passed in.
    /// </summary>
    public (float[] Logits, OrtCache Present) Causal(long[] inputIds, long[] attentionMask, int batch, OrtCache? past = null)
    {
        var s = _decoderOnly ?? throw new PeftOnnxException("this export is encoder-decoder: it needs decoder inputs (labels)");
        int seq = inputIds.Length / batch;
        int total = attentionMask.Length / batch;
        var names = new List<string> { CausalLmInterface.InputIds, CausalLmInterface.AttentionMask };
        var owned = new List<OrtValue>
        {
            OrtValue.CreateTensorValueFromMemory(inputIds, [batch, seq]),
            OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, total]),
        };
        var values = new List<OrtValue>(owned);
        if (s.InputMetadata.ContainsKey(CausalLmInterface.PositionIds))
        {
            names.Add(CausalLmInterface.PositionIds);
            var p = OrtValue.CreateTensorValueFromMemory(CausalLmInterface.PositionIdsFromMask(attentionMask, batch, seq), [batch, seq]);
            owned.Add(p);
            values.Add(p);
        }
        var pastNames = s.InputMetadata.Keys.Where(k => k.StartsWith("past_key_values.", StringComparison.Ordinal)).ToList();
        foreach (var name in pastNames)
        {
            names.Add(name);
            if (past != null) values.Add(past.Values[past.Names.IndexOf(name.Replace("past_key_values.", "present."))]);
            else
            {
                var e = EmptyPast(s.InputMetadata[name], batch, 0);
                owned.Add(e);
                values.Add(e);
            }
        }
        var outputNames = s.OutputMetadata.Keys.ToList();
        try
        {
            using var run = new RunOptions();
            var outputs = s.Run(run, names, values, outputNames);
            var logits = ReadFloat(outputs[outputNames.IndexOf(CausalLmInterface.Logits)]);
            var presentNames = outputNames.Where(n => n.StartsWith("present.", StringComparison.Ordinal)).ToList();
            var present = presentNames.Select(n => outputs[outputNames.IndexOf(n)]).ToList();
            foreach (var (o, n) in outputs.Zip(outputNames)) if (!n.StartsWith("present.", StringComparison.Ordinal)) o.Dispose();
            return (logits, new OrtCache(presentNames, present));
        }
        finally
        {
            foreach (var v in owned) v.Dispose();
        }
    }

    /// <summary>
    /// Encoder-decoder, teacher-forced: the encoder on input_ids / attention_mask [batch, length], then the decoder on
    /// <paramref name="decoderInputIds"/> [batch, L] with an empty self cache; logits [batch, L, vocab].
    /// </summary>
    public float[] Seq2Seq(long[] inputIds, long[] attentionMask, long[] decoderInputIds, int batch)
    {
        if (_encoder == null || _decoder == null) throw new PeftOnnxException("this export is decoder-only");
        int length = inputIds.Length / batch, seq = decoderInputIds.Length / batch;
        using var ids = OrtValue.CreateTensorValueFromMemory(inputIds, [batch, length]);
        using var mask = OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, length]);
        var encoderOutputs = _encoder.OutputMetadata.Keys.ToList();
        using var run = new RunOptions();
        using var encoded = _encoder.Run(run, [Seq2SeqInterface.InputIds, Seq2SeqInterface.AttentionMask], [ids, mask], encoderOutputs);
        using var decIds = OrtValue.CreateTensorValueFromMemory(decoderInputIds, [batch, seq]);
        var names = new List<string>();
        var values = new List<OrtValue>();
        var owned = new List<OrtValue>();
        try
        {
            foreach (var name in _decoder.InputMetadata.Keys)
            {
                names.Add(name);
                if (name == Seq2SeqInterface.InputIds) values.Add(decIds);
                else if (name == Seq2SeqInterface.EncoderAttentionMask) values.Add(mask);
                else if (name.EndsWith(".encoder.key", StringComparison.Ordinal) || name.EndsWith(".encoder.value", StringComparison.Ordinal))
                    values.Add(encoded[encoderOutputs.IndexOf(name.Replace("past_key_values.", "present."))]);
                else
                {
                    var e = EmptyPast(_decoder.InputMetadata[name], batch, 0);
                    owned.Add(e);
                    values.Add(e);
                }
            }
            using var outputs = _decoder.Run(run, names, values, [Seq2SeqInterface.Logits]);
            return ReadFloat(outputs[0]);
        }
        finally
        {
            foreach (var v in owned) v.Dispose();
        }
    }

    /// <summary>
    /// Checks a decoder-only export of any float type: a prefill of 2 rows x 3 tokens (second right-padded), then a
    /// decode step feeding present back as past; logits must have the interface's shapes and be finite.
    /// </summary>
    public static void CheckCausal(string modelPath)
    {
        using var f = OpenCausal(modelPath, forCheck: true);
        int vocab = f.VocabSize;
        var (prefill, present) = f.Causal([1 % vocab, 7 % vocab, 42 % vocab, 3 % vocab, 5 % vocab, 0], [1, 1, 1, 1, 1, 0], 2);
        using (present)
        {
            Finite(prefill, 2 * 3 * vocab, "prefill logits");
            var (decode, next) = f.Causal([9 % vocab, 11 % vocab], [1, 1, 1, 1, 1, 1, 0, 1], 2, present);
            next.Dispose();
            Finite(decode, 2 * vocab, "decode logits");
        }
    }

    /// <summary>Checks an encoder-decoder export of any float type with a teacher-forced pass (finite logits of the right size).</summary>
    public static void CheckSeq2Seq(string dir)
    {
        using var f = Open(dir, forCheck: true);
        int vocab = f.VocabSize;
        var logits = f.Seq2Seq([5 % vocab, 7 % vocab, 42 % vocab, 1 % vocab, 3 % vocab, 9 % vocab, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0], [0, 11 % vocab, 0, 13 % vocab], 2);
        Finite(logits, 2 * 2 * vocab, "decoder logits");
    }

    private static void Finite(float[] values, int expected, string what)
    {
        if (values.Length != expected) throw new PeftOnnxException($"{what}: {values.Length} values, expected {expected}");
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) throw new PeftOnnxException($"{what}: value {values[i]} at flat index {i}");
    }

    private static OrtValue EmptyPast(NodeMetadata meta, int batch, int length)
    {
        var d = meta.Dimensions;
        long[] shape = [batch, d[1], length, d[3]];
        return meta.ElementDataType switch
        {
            TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(Array.Empty<Float16>(), shape),
            TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), shape),
            var t => throw new PeftOnnxException($"past input of element type {t} is not supported"),
        };
    }

    private static float[] ReadFloat(OrtValue v)
    {
        var info = v.GetTensorTypeAndShape();
        return info.ElementDataType switch
        {
            TensorElementType.Float => v.GetTensorDataAsSpan<float>().ToArray(),
            TensorElementType.Float16 => v.GetTensorDataAsSpan<Float16>().ToArray().Select(h => h.ToFloat()).ToArray(),
            var t => throw new PeftOnnxException($"logits of element type {t} are not supported"),
        };
    }

    public void Dispose()
    {
        _decoderOnly?.Dispose();
        _encoder?.Dispose();
        _decoder?.Dispose();
    }
}

/// <summary>A decoder's present.* outputs, kept as OrtValues to feed back as past_key_values.*.</summary>
public sealed class OrtCache(List<string> names, List<OrtValue> values) : IDisposable
{
    public List<string> Names { get; } = names;
    public List<OrtValue> Values { get; } = values;

    public void Dispose()
    {
        foreach (var v in Values) v.Dispose();
    }
}
