using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// Loads a written model through the Runtime's forward (check sessions: <see cref="OrtSessions.CheckOptions"/>) and
/// runs it on a small batch, fp32 and fp16 exports alike.
/// </summary>
public static class OnnxCheck
{
    /// <summary>
    /// Checks a causal-LM graph: a prefill of 2 rows x 3 tokens (second row right-padded) with an empty past,
    /// then one decode step feeding present back as past. Output shapes must match the interface and every
    /// logit and cache value must be finite. Throws <see cref="PeftOnnxException"/> otherwise.
    /// </summary>
    public static OnnxCheckReport CausalLm(string modelPath) => CausalLm(modelPath, CheckWeights.Float);

    /// <summary>
    /// As <see cref="CausalLm(string)"/>, the session suited to how the graph holds its weights; <paramref name="runsBegin"/>
    /// is called once the session is open (loading and pre-packing done), before the runs.
    /// </summary>
    public static OnnxCheckReport CausalLm(string modelPath, CheckWeights weights, Action? runsBegin = null)
    {
        try
        {
            using var runner = CausalLmForward.Open(modelPath, SessionKind(weights));
            runsBegin?.Invoke();
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
    public static Seq2SeqCheckReport Seq2Seq(string encoderPath, string decoderPath) => Seq2Seq(encoderPath, decoderPath, CheckWeights.Float);

    /// <summary>
    /// As <see cref="Seq2Seq(string, string)"/>, the sessions suited to how the graphs hold their weights;
    /// <paramref name="runsBegin"/> is called once both sessions are open, before the runs.
    /// </summary>
    public static Seq2SeqCheckReport Seq2Seq(string encoderPath, string decoderPath, CheckWeights weights, Action? runsBegin = null)
    {
        try
        {
            using var runner = Seq2SeqForward.Open(encoderPath, decoderPath, SessionKind(weights));
            runsBegin?.Invoke();
            const int batch = 2;
            var vocab = runner.VocabSize;
            long[] ids = [5 % vocab, 7 % vocab, 42 % vocab, 1 % vocab, 3 % vocab, 9 % vocab, 0, 0];
            long[] mask = [1, 1, 1, 1, 1, 1, 0, 0];
            var encoded = runner.Encode(ids, mask, batch);
            Finite(encoded.LastHiddenState, Seq2SeqContract.LastHiddenState);
            for (int i = 0; i < runner.NumDecoderLayers; i++)
            {
                Finite(encoded.CrossKeys[i], Seq2SeqContract.PresentCrossKey(i));
                Finite(encoded.CrossValues[i], Seq2SeqContract.PresentCrossValue(i));
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

    private static ForwardSessionKind SessionKind(CheckWeights weights) =>
        weights == CheckWeights.Quantized ? ForwardSessionKind.QuantizedCheck : ForwardSessionKind.Check;

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

    private static void Finite(KeyValueCache cache, string what)
    {
        for (int i = 0; i < cache.Keys.Length; i++)
        {
            Finite(cache.Keys[i], $"{what}.{i}.key");
            Finite(cache.Values[i], $"{what}.{i}.value");
        }
    }
}
