using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>Decoder-only (the PEFT causal-LM guide) or encoder-decoder (the seq2seq guides).</summary>
public enum TaskKind { CausalLm, Seq2SeqLm }

/// <summary>
/// One tokenized row. Causal: <see cref="InputIds"/> = prompt + target, <see cref="Labels"/> = -100 on the prompt then the
/// target; <see cref="PromptIds"/> is what generation starts from. Seq2seq: <see cref="InputIds"/> = text + eos (the
/// encoder input, also the generation input), <see cref="Labels"/> = label + eos.
/// </summary>
public sealed record Example(long[] InputIds, long[] Labels, long[] PromptIds, string Label);

/// <summary>Token ids the data pipeline needs: eos ends every target, pad fills batches.</summary>
public sealed record SpecialIds(long Eos, long Pad);

/// <summary>
/// Builds examples exactly as BASELINES.md describes the PEFT guides' preprocessing:
/// causal: prompt = tok(template(text)), target = tok(label) + [eos]; seq2seq: input = (tok(text) + [eos])[:max], labels = tok(label) + [eos].
/// </summary>
public sealed class ExampleBuilder
{
    public const int DefaultSeq2SeqMaxLength = 128;

    private readonly HfTokenizer _tokenizer;

    public ExampleBuilder(HfTokenizer tokenizer, TaskKind task, SpecialIds ids, PromptTemplate? template = null, int? maxLength = null, int? targetMaxLength = null)
    {
        if (maxLength is < 1) throw new PeftOnnxException($"--max-length {maxLength} must be >= 1");
        if (targetMaxLength is < 1) throw new PeftOnnxException($"--target-max-length {targetMaxLength} must be >= 1");
        _tokenizer = tokenizer;
        Task = task;
        Ids = ids;
        Template = template;
        MaxLength = maxLength ?? (task == TaskKind.Seq2SeqLm ? DefaultSeq2SeqMaxLength : null);
        TargetMaxLength = targetMaxLength;
    }

    public TaskKind Task { get; }
    public SpecialIds Ids { get; }
    public PromptTemplate? Template { get; }

    /// <summary>Causal: the most tokens of prompt + target (the prompt is cut from its start); seq2seq: of the encoder input.</summary>
    public int? MaxLength { get; }

    /// <summary>The most tokens of a target (label + eos); null = not cut.</summary>
    public int? TargetMaxLength { get; }

    /// <summary>The tokens of a label as a target: tok(label) + [eos] (cut to --target-max-length).</summary>
    public long[] TargetIds(string label)
    {
        var ids = _tokenizer.Encode(label).Select(i => (long)i).Append(Ids.Eos).ToArray();
        return TargetMaxLength is { } t && ids.Length > t ? ids[..t] : ids;
    }

    /// <summary>The tokens generation starts from for a text: tok(template(text)) (causal), (tok(template(text)) + [eos])[:max] (seq2seq; no template by default).</summary>
    public long[] PromptIds(string text, int targetLength = 0)
    {
        if (Task == TaskKind.Seq2SeqLm)
        {
            var ids = _tokenizer.Encode(Template?.Format(text) ?? text).Select(i => (long)i).ToList();
            if (ids.Count == 0 || ids[^1] != Ids.Eos) ids.Add(Ids.Eos);
            return MaxLength is { } m && ids.Count > m ? ids.Take(m).ToArray() : ids.ToArray();
        }
        var prompt = _tokenizer.Encode(Template?.Format(text) ?? text).Select(i => (long)i).ToArray();
        if (MaxLength is { } max && prompt.Length + targetLength > max)
        {
            // Keep the end of the prompt ("... Label : ") next to the target: cut from the start.
            var keep = Math.Max(0, max - targetLength);
            prompt = prompt[(prompt.Length - keep)..];
        }
        return prompt;
    }

    public Example Build(string text, string label)
    {
        var target = TargetIds(label);
        if (Task == TaskKind.Seq2SeqLm)
        {
            var input = PromptIds(text);
            return new Example(input, target, input, label);
        }
        var prompt = PromptIds(text, target.Length);
        var ids = prompt.Concat(target).ToArray();
        var labels = Enumerable.Repeat(LmLoss.IgnoreIndex, prompt.Length).Concat(target).ToArray();
        if (MaxLength is { } max && ids.Length > max)
        {
            ids = ids[(ids.Length - max)..];
            labels = labels[(labels.Length - max)..];
        }
        return new Example(ids, labels, prompt, label);
    }

    /// <summary>Every row of a table, by column names (missing columns fail listing the columns there are).</summary>
    public IReadOnlyList<Example> BuildAll(DataTable table, string textColumn, string labelColumn)
    {
        var text = table.ColumnIndex(textColumn);
        var label = table.ColumnIndex(labelColumn);
        return table.Rows.Select(r => Build(r[text], r[label])).ToList();
    }
}

/// <summary>A padded batch as flat row-major arrays: input_ids / attention_mask [B, T], labels [B, L] (L = T for causal).</summary>
public sealed record PaddedBatch(long[] InputIds, long[] AttentionMask, long[] Shape, long[] Labels, long[] LabelShape)
{
    public int Rows => (int)Shape[0];
}

/// <summary>
/// The guides' collation: causal batches LEFT-padded to their longest example (pad id, mask 0, labels -100);
/// seq2seq inputs RIGHT-padded (pad id, mask 0) and labels right-padded with -100.
/// </summary>
public static class BatchCollator
{
    public static PaddedBatch Collate(IReadOnlyList<Example> examples, TaskKind task, long pad)
    {
        if (examples.Count == 0) throw new ArgumentException("empty batch", nameof(examples));
        int b = examples.Count;
        if (task == TaskKind.CausalLm)
        {
            int t = examples.Max(e => e.InputIds.Length);
            var ids = new long[b * t];
            var mask = new long[b * t];
            var labels = new long[b * t];
            for (int r = 0; r < b; r++)
            {
                var e = examples[r];
                int padding = t - e.InputIds.Length;
                for (int i = 0; i < t; i++)
                {
                    bool real = i >= padding;
                    ids[r * t + i] = real ? e.InputIds[i - padding] : pad;
                    mask[r * t + i] = real ? 1 : 0;
                    labels[r * t + i] = real ? e.Labels[i - padding] : LmLoss.IgnoreIndex;
                }
            }
            return new PaddedBatch(ids, mask, [b, t], labels, [b, t]);
        }
        var (inputs, inputMask, shape) = Pad(examples.Select(e => e.InputIds).ToList(), pad, left: false);
        int l = examples.Max(e => e.Labels.Length);
        var lab = new long[b * l];
        for (int r = 0; r < b; r++)
            for (int i = 0; i < l; i++)
                lab[r * l + i] = i < examples[r].Labels.Length ? examples[r].Labels[i] : LmLoss.IgnoreIndex;
        return new PaddedBatch(inputs, inputMask, shape, lab, [b, l]);
    }

    /// <summary>Pads sequences to the longest: left (causal prompts for generation) or right (encoder inputs).</summary>
    public static (long[] Ids, long[] Mask, long[] Shape) Pad(IReadOnlyList<long[]> sequences, long pad, bool left)
    {
        int b = sequences.Count;
        int t = sequences.Max(s => s.Length);
        var ids = new long[b * t];
        var mask = new long[b * t];
        for (int r = 0; r < b; r++)
        {
            var s = sequences[r];
            int offset = left ? t - s.Length : 0;
            for (int i = 0; i < t; i++)
            {
                int j = i - offset;
                bool real = j >= 0 && j < s.Length;
                ids[r * t + i] = real ? s[j] : pad;
                mask[r * t + i] = real ? 1 : 0;
            }
        }
        return (ids, mask, [b, t]);
    }
}
