using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using static TorchSharp.torch;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>What greedy generation on the validation split gave.</summary>
public sealed record AccuracyResult(int Correct, int Rows, Dictionary<string, int> Predictions, Dictionary<string, int> OtherExamples, IReadOnlyList<string> Answers)
{
    public double Accuracy => Rows == 0 ? 0 : (double)Correct / Rows;
}

/// <summary>
/// The guides' evaluation: mean loss over the validation batches, and the accuracy of greedily generated labels
/// (generate in batches, decode the new tokens skipping special tokens, strip, exact match with the label text).
/// </summary>
public static class Evaluation
{
    /// <summary>Mean of the model's loss over batches of <paramref name="batchSize"/> (eval mode, no grad).</summary>
    public static double Loss(PeftModel model, IReadOnlyList<Example> examples, TaskKind task, long pad, int batchSize, Action<int, int>? progress = null)
    {
        var wasTraining = model.Base.Training;
        model.Base.Training = false;
        try
        {
            double sum = 0;
            int batches = (examples.Count + batchSize - 1) / batchSize;
            for (int b = 0; b < batches; b++)
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var batch = BatchCollator.Collate(examples.Skip(b * batchSize).Take(batchSize).ToList(), task, pad);
                var loss = ForwardPass.Forward(model, tensor(batch.InputIds, batch.Shape), tensor(batch.AttentionMask, batch.Shape),
                    tensor(batch.Labels, batch.LabelShape)).Loss!;
                sum += loss.to(float64).item<double>();
                progress?.Invoke(b + 1, batches);
            }
            return batches == 0 ? double.NaN : sum / batches;
        }
        finally { model.Base.Training = wasTraining; }
    }

    /// <summary>Greedy answers for every example, matched against its label.</summary>
    public static AccuracyResult Accuracy(PeftModel model, HfTokenizer tokenizer, IReadOnlyList<Example> examples, TaskKind task,
        SpecialIds ids, int maxNewTokens, IReadOnlyCollection<string> labelSet, int batchSize = 32, Action<int, int>? progress = null)
    {
        var answers = new List<string>(examples.Count);
        var options = new GreedyOptions(maxNewTokens, [ids.Eos], ids.Pad);
        int batches = (examples.Count + batchSize - 1) / batchSize;
        for (int b = 0; b < batches; b++)
        {
            using var scope = NewDisposeScope();
            var rows = examples.Skip(b * batchSize).Take(batchSize).ToList();
            var (flat, mask, shape) = BatchCollator.Pad(rows.Select(r => r.PromptIds).ToList(), ids.Pad, left: task == TaskKind.CausalLm);
            var input = tensor(flat, shape);
            var attention = tensor(mask, shape);
            var sequences = Generate(model, input, attention, options);
            // Causal: prompt + new tokens; encoder-decoder: start token + new tokens.
            int skip = task == TaskKind.CausalLm ? (int)shape[1] : 1;
            var data = sequences.cpu().contiguous().data<long>().ToArray();
            int width = (int)sequences.shape[1];
            for (int r = 0; r < rows.Count; r++)
            {
                var fresh = new List<int>();
                for (int i = skip; i < width; i++) fresh.Add((int)data[r * width + i]);
                answers.Add(tokenizer.Decode(fresh, skipSpecialTokens: true).Trim());
            }
            progress?.Invoke(b + 1, batches);
        }

        var predictions = labelSet.ToDictionary(l => l, _ => 0, StringComparer.Ordinal);
        predictions["other"] = 0;
        var others = new Dictionary<string, int>(StringComparer.Ordinal);
        int correct = 0;
        for (int i = 0; i < examples.Count; i++)
        {
            var a = answers[i];
            if (a == examples[i].Label.Trim()) correct++;
            if (predictions.ContainsKey(a) && a != "other") predictions[a]++;
            else
            {
                predictions["other"]++;
                others[a] = others.GetValueOrDefault(a) + 1;
            }
        }
        var top = others.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Take(5)
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        return new AccuracyResult(correct, examples.Count, predictions, top, answers);
    }

    /// <summary>Greedy generation through the adapter: prompt methods inject their prompt; LoRA/IA3 live in the base's layers.</summary>
    public static Tensor Generate(PeftModel model, Tensor inputIds, Tensor attentionMask, GreedyOptions options)
    {
        if (model.Tuner is PromptLearningTuner prompt) return prompt.Generate(inputIds, attentionMask, options);
        return model.Base switch
        {
            CausalLm lm => GreedySearch.Generate(lm, inputIds, attentionMask, options),
            Seq2SeqLm s2s => GreedySearch.Generate(s2s, inputIds, attentionMask, options),
            _ => throw new Core.PeftOnnxException($"{model.Base.Architecture.ClassName}: no generation for this model kind"),
        };
    }
}
