using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Core.Data;

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

    /// <summary>A decoder-only model (<paramref name="model"/>) predicts its own sequence: labels must have the shape of input_ids.</summary>
    public void CheckLabelsLikeInputs(string path, string model)
    {
        if (Labels is not null && !LabelShape!.SequenceEqual(Shape))
            throw new PeftOnnxException($"{path}: labels has shape [{string.Join(", ", LabelShape!)}] but {model} needs the shape of input_ids [{string.Join(", ", Shape)}]");
    }

    /// <summary>Rejects ids outside the vocabulary before any compute (an index error deep in libtorch helps nobody).</summary>
    public void CheckVocabulary(int vocabSize, string path)
    {
        for (int i = 0; i < InputIds.Length; i++)
            if (InputIds[i] < 0 || InputIds[i] >= vocabSize)
                throw new PeftOnnxException($"{path}: input_ids[{i / Shape[1]}, {i % Shape[1]}] = {InputIds[i]} is outside the vocabulary [0, {vocabSize})");
        if (Labels == null) return;
        for (int i = 0; i < Labels.Length; i++)
            if (Labels[i] != LabelIds.Ignore && (Labels[i] < 0 || Labels[i] >= vocabSize))
                throw new PeftOnnxException($"{path}: labels[{i / LabelShape![1]}, {i % LabelShape[1]}] = {Labels[i]} is outside the vocabulary [0, {vocabSize}) and is not -100");
    }
}
