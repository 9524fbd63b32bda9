using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `forward --onnx DIR`: the exported graphs run with ONNX Runtime (CPU; CUDA with --device cuda) on a batch from safetensors. Decoder-only:
/// position_ids from the mask (the graphs' contract); encoder-decoder: the decoder input is labels shifted right
/// with the decoder start token (-100 -> pad), so labels are required. Writes logits float32 ([B, T, V] or
/// [B, L, V]) and, with labels, loss = mean cross-entropy over labels != -100 (causal: token t predicts label t+1).
/// </summary>
public static class ForwardOnnx
{
    public static int Run(ArgReader args, string onnxDir)
    {
        var inputsPath = args.ExistingFile("inputs", "a safetensors file with input_ids, attention_mask [, labels]");
        var output = args.Required("out", "the safetensors file to write logits to");
        var device = args.Choice("device", "auto", "cpu", "cuda", "auto");
        args.EnsureAllUsed();
        if (!Directory.Exists(onnxDir)) throw new PeftOnnxException($"forward: --onnx {onnxDir}: folder not found");
        if (device == "auto") Console.Error.WriteLine("device: cpu (ONNX Runtime CPU provider)");

        long[] ids, mask;
        long[]? labels;
        long[] shape, labelShape = [];
        using (var file = SafeTensorsFile.Open(inputsPath))
        {
            foreach (var required in new[] { "input_ids", "attention_mask" })
                if (!file.Contains(required)) throw new PeftOnnxException($"{inputsPath}: no tensor '{required}' (int64 [batch, seq])");
            shape = file["input_ids"].Shape;
            if (shape.Length != 2) throw new PeftOnnxException($"{inputsPath}: input_ids has shape [{string.Join(", ", shape)}], expected [batch, seq]");
            if (!file["attention_mask"].Shape.SequenceEqual(shape))
                throw new PeftOnnxException($"{inputsPath}: attention_mask has shape [{string.Join(", ", file["attention_mask"].Shape)}], expected [{string.Join(", ", shape)}] like input_ids");
            ids = file.ReadInt64("input_ids");
            mask = file.ReadInt64("attention_mask");
            labels = file.Contains("labels") ? file.ReadInt64("labels") : null;
            if (labels != null) labelShape = file["labels"].Shape;
        }
        int batch = (int)shape[0];

        using var model = LogitsForward.Open(onnxDir, device == "cuda" ? ForwardSessionKind.Cuda : ForwardSessionKind.Cpu);
        ModelConfig.Load(onnxDir).PositionTable?.Check(shape[1], model.VirtualTokens, inputsPath);
        int vocab = model.VocabSize;
        foreach (var id in ids)
            if (id < 0 || id >= vocab) throw new PeftOnnxException($"{inputsPath}: input_ids holds {id}, outside the vocabulary [0, {vocab})");
        float[] logits;
        long[] logitsShape;
        double? loss = null;
        if (model.IsEncoderDecoder)
        {
            if (labels == null) throw new PeftOnnxException($"{inputsPath}: an encoder-decoder export needs 'labels' [batch, target_len] (the decoder input is labels shifted right)");
            if (labelShape.Length != 2 || labelShape[0] != batch) throw new PeftOnnxException($"{inputsPath}: labels has shape [{string.Join(", ", labelShape)}], expected [{batch}, target_len]");
            var config = ModelConfig.Load(onnxDir);
            int start = config.DecoderStartId;
            var decoderIds = Seq2SeqForward.ShiftRight(labels, batch, start, config.PadTokenId ?? 0);
            logits = model.Seq2Seq(ids, mask, decoderIds, batch);
            logitsShape = [batch, labelShape[1], vocab];
            loss = MeanCrossEntropy(logits, vocab, labels, shift: false, batch);
        }
        else
        {
            logits = model.Causal(ids, mask, batch);
            logitsShape = [batch, shape[1], vocab];
            if (labels != null)
            {
                if (!labelShape.SequenceEqual(shape)) throw new PeftOnnxException($"{inputsPath}: labels has shape [{string.Join(", ", labelShape)}], expected [{string.Join(", ", shape)}] like input_ids");
                loss = MeanCrossEntropy(logits, vocab, labels, shift: true, batch);
            }
        }

        var tensors = new List<TensorData> { TensorData.FromFloat32("logits", logitsShape, logits) };
        if (loss is { } value) tensors.Add(TensorData.FromFloat32("loss", [], [(float)value]));
        SafeTensorsWriter.Write(output, tensors);
        Console.Error.WriteLine($"wrote logits [{string.Join(", ", logitsShape)}]{(loss is { } v ? $" and loss {(float)v:G9}" : "")} to {output}");
        return 0;
    }

    /// <summary>
    /// Mean cross-entropy over labels != -100 (torch's CrossEntropyLoss), logits [batch, T, vocab], labels [batch, T];
    /// with <paramref name="shift"/> position t is scored against label t + 1 (causal LMs).
    /// </summary>
    public static double MeanCrossEntropy(float[] logits, int vocab, long[] labels, bool shift, int batch)
    {
        int length = labels.Length / batch;
        double sum = 0;
        long count = 0;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < length - (shift ? 1 : 0); t++)
            {
                var label = labels[b * length + t + (shift ? 1 : 0)];
                if (label == -100) continue;
                if (label < 0 || label >= vocab) throw new PeftOnnxException($"labels holds {label}, outside the vocabulary [0, {vocab}) and not -100");
                var row = logits.AsSpan((b * length + t) * vocab, vocab);
                double max = double.NegativeInfinity;
                foreach (var v in row) max = Math.Max(max, v);
                double z = 0;
                foreach (var v in row) z += Math.Exp(v - max);
                sum += max + Math.Log(z) - row[(int)label];
                count++;
            }
        if (count == 0) throw new PeftOnnxException("labels has no position other than -100: the loss is undefined");
        return sum / count;
    }
}
