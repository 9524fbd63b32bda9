using Peft.Onnx.Core;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using static TorchSharp.torch;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Trainer.Inference;

/// <summary>Runs a base model's forward in eval mode on one batch.</summary>
public static class ForwardPass
{
    public static ForwardResult Run(PretrainedModel model, ForwardBatch batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.Training = false;
        var ids = tensor(batch.InputIds, batch.Shape);
        var mask = tensor(batch.AttentionMask, batch.Shape);
        var labels = batch.Labels is null ? null : tensor(batch.Labels, batch.LabelShape!);
        var output = model switch
        {
            CausalLm lm => lm.Forward(new CausalLmInput(ids, mask, Labels: labels)),
            Seq2SeqLm s2s => s2s.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels)),
            _ => throw new PeftOnnxException($"no forward for {model.Architecture.ClassName}"),
        };
        return ToResult(output.Logits, output.Loss);
    }

    /// <summary>
    /// Runs base + adapter in eval mode (PEFT's PeftModel forward). Logits cover the caller's real tokens only:
    /// the virtual tokens a prompt method prepends are dropped, so the shape is [B, T, V] (encoder-decoder: [B, L, V]).
    /// </summary>
    public static ForwardResult Run(PeftModel model, ForwardBatch batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var wasTraining = model.Base.Training;
        model.Base.Training = false;
        try
        {
            var ids = tensor(batch.InputIds, batch.Shape);
            var mask = tensor(batch.AttentionMask, batch.Shape);
            var labels = batch.Labels is null ? null : tensor(batch.Labels, batch.LabelShape!);
            var output = Forward(model, ids, mask, labels);
            return ToResult(RealTokenLogits(model, output.Logits, batch), output.Loss);
        }
        finally
        {
            model.Base.Training = wasTraining;
        }
    }

    /// <summary>The adapted model's forward on one batch: causal LMs get CausalLmInput, encoder-decoders Seq2SeqLmInput.</summary>
    public static LmOutput Forward(PeftModel model, Tensor inputIds, Tensor attentionMask, Tensor? labels) => model.Base switch
    {
        CausalLm => model.Forward(new CausalLmInput(inputIds, attentionMask, Labels: labels)),
        Seq2SeqLm => model.Forward(new Seq2SeqLmInput(inputIds, attentionMask, Labels: labels)),
        _ => throw new PeftOnnxException($"no forward for {model.Base.Architecture.ClassName}"),
    };

    /// <summary>
    /// Drops soft-prompt positions from the logits: decoder-only models see the virtual tokens first; an
    /// encoder-decoder's logits follow the decoder targets, so only the last L positions (L = label length) are kept.
    /// </summary>
    public static Tensor RealTokenLogits(PeftModel model, Tensor logits, ForwardBatch batch)
    {
        if (model.Base is Seq2SeqLm)
        {
            var length = batch.LabelShape?[1] ?? logits.shape[1];
            return logits.shape[1] > length ? logits[.., (int)(logits.shape[1] - length).., ..] : logits;
        }
        var virtualTokens = model.Tuner.PrependedTokens;
        if (virtualTokens == 0) return logits;
        if (logits.shape[1] != batch.Shape[1] + virtualTokens)
            throw new PeftOnnxException($"the adapted model returned {logits.shape[1]} positions for {batch.Shape[1]} tokens and {virtualTokens} virtual tokens");
        return logits[.., virtualTokens.., ..];
    }

    public static ForwardResult ToResult(Tensor logits, Tensor? loss)
    {
        var cpu = logits.to(float32).cpu().contiguous();
        return new ForwardResult(cpu.data<float>().ToArray(), cpu.shape, loss?.to(float32).cpu().item<float>());
    }
}
