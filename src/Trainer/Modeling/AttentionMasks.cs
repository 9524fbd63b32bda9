using Peft.Onnx.Core;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>The additive attention masks and input checks the decoder-only families share.</summary>
public static class AttentionMasks
{
    public static void CheckMask(Tensor mask, long batch, long keyLength)
    {
        if (mask.dim() != 2 || mask.shape[0] != batch || mask.shape[1] != keyLength)
            throw new PeftOnnxException($"attention_mask has shape [{string.Join(", ", mask.shape)}] but must be [{batch}, {keyLength}] (batch, past + current positions)");
    }

    /// <summary>The past to attend to (null when none or empty); one (key, value) per layer, as the model has layers.</summary>
    public static KvCache? PastOrNull(KvCache? past, int layers)
    {
        if (past is null || past.Self.Count == 0) return null;
        if (past.Self.Count != layers)
            throw new PeftOnnxException($"past_key_values has {past.Self.Count} layers but the model has {layers}");
        return past;
    }

    /// <summary>torch.finfo(dtype).min, the value transformers masks with (not -inf, so fully masked rows stay finite).</summary>
    public static double MinValue(ScalarType dtype) => finfo(dtype).min;

    /// <summary>
    /// _prepare_decoder_attention_mask: causal mask (finfo.min above the diagonal, past columns open) plus the
    /// expanded padding mask (finfo.min where the mask is not 1), [B|1, 1, T, past+T]. A single new token has no
    /// causal part; with no mask and one token nothing is masked (null).
    /// </summary>
    public static Tensor? Decoder(Tensor? attentionMask, long batch, long length, long pastLength, ScalarType dtype, Device device)
    {
        long keyLength = pastLength + length;
        var min = MinValue(dtype);
        Tensor? combined = null;
        if (length > 1)
        {
            var blocked = ones(length, keyLength, dtype: @bool, device: device).triu(pastLength + 1);
            combined = zeros(length, keyLength, dtype: dtype, device: device).MaskedFill(blocked, min).view(1, 1, length, keyLength);
        }
        if (attentionMask is not null)
        {
            CheckMask(attentionMask, batch, keyLength);
            var inverted = attentionMask.reshape(batch, 1, 1, keyLength).to(dtype).SubtractedFrom(1.0);
            var expanded = inverted.MaskedFill(inverted.to(@bool), min);
            combined = combined is null ? expanded : expanded.Plus(combined);
        }
        return combined;
    }
}
