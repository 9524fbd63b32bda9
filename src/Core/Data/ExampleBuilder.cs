using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Core.Data;

/// <summary>
/// Builds examples exactly as BASELINES.md describes the PEFT guides' preprocessing:
/// causal: prompt = tok(template(text)), target = tok(label) + [eos]; seq2seq: input = (tok(text) + [eos])[:max], labels = tok(label) + [eos].
/// </summary>
public sealed class ExampleBuilder
{
    public const int DefaultSeq2SeqMaxLength = 128;

    /// <summary>The prompt a causal model is trained and labelled with when no template is given.</summary>
    public const string DefaultCausalTemplate = "{text} Label : ";

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
        var labels = Enumerable.Repeat(LabelIds.Ignore, prompt.Length).Concat(target).ToArray();
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
