using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime;

/// <summary>
/// A full-sequence forward returning logits on an exported folder, decoder-only (model.onnx) or encoder-decoder
/// (encoder_model.onnx + decoder_model.onnx), fp32 or fp16: what `forward --onnx` and compare run.
/// </summary>
public sealed class LogitsForward : IDisposable
{
    private readonly CausalLmForward? _causal;
    private readonly Seq2SeqForward? _seq2seq;

    private LogitsForward(CausalLmForward? causal, Seq2SeqForward? seq2seq)
    {
        _causal = causal;
        _seq2seq = seq2seq;
    }

    /// <summary>True for an encoder-decoder folder.</summary>
    public bool IsEncoderDecoder => _seq2seq != null;

    /// <summary>Virtual tokens of a baked soft prompt or prefix (the export's metadata), else 0.</summary>
    public int VirtualTokens => _causal?.VirtualTokens ?? _seq2seq!.VirtualTokens;

    public int VocabSize => _causal?.VocabSize ?? _seq2seq!.VocabSize;

    /// <summary>
    /// Opens model.onnx, or encoder_model.onnx + decoder_model.onnx, in <paramref name="dir"/> with sessions of
    /// <paramref name="kind"/>.
    /// </summary>
    public static LogitsForward Open(string dir, ForwardSessionKind kind = ForwardSessionKind.Cpu)
    {
        try
        {
            if (File.Exists(Path.Combine(dir, CausalLmContract.ModelFile)))
                return new(CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile), kind), null);
            if (File.Exists(Path.Combine(dir, Seq2SeqContract.EncoderFile)) && File.Exists(Path.Combine(dir, Seq2SeqContract.DecoderFile)))
                return new(null, Seq2SeqForward.Open(dir, kind));
        }
        catch (OnnxRuntimeException ex)
        {
            throw new PeftOnnxException($"{dir}: ONNX Runtime could not load the exported model: {ex.Message.Split('\n')[0]}", ex);
        }
        throw new PeftOnnxException($"{dir}: no {CausalLmContract.ModelFile} (decoder-only) or {Seq2SeqContract.EncoderFile} + {Seq2SeqContract.DecoderFile} (encoder-decoder) found");
    }

    /// <summary>
    /// Decoder-only, logits [batch, seq, vocab] for input_ids / attention_mask [batch, seq] with an empty cache;
    /// position_ids (where the graph takes them) from the mask.
    /// </summary>
    public float[] Causal(long[] inputIds, long[] attentionMask, int batch, long[]? adapterIndices = null) =>
        (_causal ?? throw new PeftOnnxException("this export is encoder-decoder: it needs decoder inputs (labels)")).Logits(inputIds, attentionMask, batch, adapterIndices);

    /// <summary>
    /// Encoder-decoder, teacher-forced: the encoder on input_ids / attention_mask [batch, length], then the decoder on
    /// <paramref name="decoderInputIds"/> [batch, L] with an empty self cache; logits [batch, L, vocab].
    /// </summary>
    public float[] Seq2Seq(long[] inputIds, long[] attentionMask, long[] decoderInputIds, int batch, long[]? adapterIndices = null) =>
        (_seq2seq ?? throw new PeftOnnxException("this export is decoder-only")).Forward(inputIds, attentionMask, decoderInputIds, batch, adapterIndices).Logits;

    public void Dispose()
    {
        _causal?.Dispose();
        _seq2seq?.Dispose();
    }
}
