using Peft.Onnx.Core;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Inference;

/// <summary>The tensors `peft-onnx forward` reads: input_ids, attention_mask [B, T] and optional labels.</summary>
public sealed record ForwardBatch(long[] InputIds, long[] AttentionMask, long[] Shape, long[]? Labels, long[]? LabelShape)
{
    public static ForwardBatch Read(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        foreach (var required in new[] { "input_ids", "attention_mask" })
            if (!file.Contains(required)) throw new PeftOnnxException($"{path}: missing tensor '{required}' (expected int64 [batch, seq])");
        var shape = file["input_ids"].Shape;
        if (shape.Length != 2) throw new PeftOnnxException($"{path}: input_ids has shape [{string.Join(", ", shape)}], expected [batch, seq]");
        if (!file["attention_mask"].Shape.SequenceEqual(shape))
            throw new PeftOnnxException($"{path}: attention_mask has shape [{string.Join(", ", file["attention_mask"].Shape)}], expected [{string.Join(", ", shape)}] like input_ids");
        long[]? labels = null, labelShape = null;
        if (file.Contains("labels"))
        {
            labels = file.ReadInt64("labels");
            labelShape = file["labels"].Shape;
            if (labelShape.Length != 2 || labelShape[0] != shape[0])
                throw new PeftOnnxException($"{path}: labels has shape [{string.Join(", ", labelShape)}], expected [{shape[0]}, length]");
        }
        return new ForwardBatch(file.ReadInt64("input_ids"), file.ReadInt64("attention_mask"), shape, labels, labelShape);
    }

    /// <summary>A decoder-only model predicts its own sequence: its labels must have the shape of input_ids.</summary>
    public void CheckLabels(PretrainedModel model, string path)
    {
        if (Labels is not null && model is CausalLm && !LabelShape!.SequenceEqual(Shape))
            throw new PeftOnnxException($"{path}: labels has shape [{string.Join(", ", LabelShape!)}] but {model.Architecture.ClassName} needs the shape of input_ids [{string.Join(", ", Shape)}]");
    }

    /// <summary>Rejects ids outside the vocabulary before any compute (an index error deep in libtorch helps nobody).</summary>
    public void CheckVocabulary(int vocabSize, string path)
    {
        for (int i = 0; i < InputIds.Length; i++)
            if (InputIds[i] < 0 || InputIds[i] >= vocabSize)
                throw new PeftOnnxException($"{path}: input_ids[{i / Shape[1]}, {i % Shape[1]}] = {InputIds[i]} is outside the vocabulary [0, {vocabSize})");
        if (Labels == null) return;
        for (int i = 0; i < Labels.Length; i++)
            if (Labels[i] != LmLoss.IgnoreIndex && (Labels[i] < 0 || Labels[i] >= vocabSize))
                throw new PeftOnnxException($"{path}: labels[{i / LabelShape![1]}, {i % LabelShape[1]}] = {Labels[i]} is outside the vocabulary [0, {vocabSize}) and is not -100");
    }
}

/// <summary>Logits [B, T, V] (float32) and the loss when labels were given.</summary>
public sealed record ForwardResult(float[] Logits, long[] LogitsShape, float? Loss);

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

    public static void Write(ForwardResult result, string path)
    {
        var tensors = new List<TensorData> { TensorData.FromFloat32("logits", result.LogitsShape, result.Logits) };
        if (result.Loss is { } loss) tensors.Add(TensorData.FromFloat32("loss", [], [loss]));
        SafeTensorsWriter.Write(path, tensors);
    }
}
