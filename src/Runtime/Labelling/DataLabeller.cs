using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Runtime.Labelling;

/// <summary>
/// Labels texts with an exported model as `train --data` measures its accuracy: the prompt is built by the same
/// <see cref="ExampleBuilder"/> (template, eos for encoder-decoders, --max-length cut), generation is greedy, and the
/// answer is the decoded new tokens (special tokens skipped) with surrounding white space removed.
/// </summary>
public sealed class DataLabeller
{
    private readonly OnnxModel _model;
    private readonly ExampleBuilder _prompts;

    public DataLabeller(OnnxModel model, PromptTemplate? template, int? maxLength)
    {
        _model = model;
        if (!model.HasTokenizer)
        {
            try { _ = model.Tokenizer; }
            catch (PeftOnnxException ex) { throw new PeftOnnxException($"generate --data needs the folder's tokenizer: {ex.Message}"); }
        }
        var tokenizer = model.Tokenizer;
        var task = model.IsEncoderDecoder ? TaskKind.Seq2SeqLm : TaskKind.CausalLm;
        var eos = tokenizer.EosTokenId ?? model.Config.EosTokenId?.FirstOrDefault()
            ?? throw new PeftOnnxException($"{model.Directory}: the tokenizer and config.json name no eos token");
        var pad = tokenizer.PadTokenId ?? model.Config.PadTokenId ?? eos;
        Template = template ?? (task == TaskKind.CausalLm ? PromptTemplate.Parse(ExampleBuilder.DefaultCausalTemplate) : null);
        _prompts = new ExampleBuilder(tokenizer, task, new SpecialIds(eos, pad), Template, maxLength);
    }

    /// <summary>The template in use (null: the bare text, encoder-decoder models without --template).</summary>
    public PromptTemplate? Template { get; }

    /// <summary>The token ids generation starts from for one text.</summary>
    public int[] PromptIds(string text) => _prompts.PromptIds(text).Select(i => (int)i).ToArray();

    /// <summary>
    /// One label per text, in the order given. Rows are generated in batches of similar prompt length (less padding,
    /// the same answers: every prompt is left-padded and masked); <paramref name="progress"/> gets (rows done, rows).
    /// </summary>
    public string[] Label(IReadOnlyList<string> texts, int batchSize, int? maxNewTokens, Action<int, int>? progress = null, CancellationToken cancellationToken = default)
    {
        if (batchSize < 1) throw new PeftOnnxException($"--batch-size {batchSize} must be >= 1");
        var prompts = new int[texts.Count][];
        for (int i = 0; i < texts.Count; i++)
        {
            prompts[i] = PromptIds(texts[i]);
            if (prompts[i].Length == 0) throw new PeftOnnxException($"row {i + 1}: the prompt has no tokens (an empty text and an empty template)");
        }
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => prompts[i].Length).ToArray();
        var labels = new string[texts.Count];
        var options = GenerationOptions.Greedy(maxNewTokens);
        for (int start = 0; start < order.Length; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var rows = order.AsSpan(start, Math.Min(batchSize, order.Length - start)).ToArray();
            var ids = rows.Select(r => (IReadOnlyList<int>)prompts[r]).ToList();
            var request = new GenerationRequest
            {
                InputIds = ids,
                // Every prompt token is real: without a mask a pad id inside a text would be masked out.
                AttentionMask = ids.Select(p => (IReadOnlyList<int>)Enumerable.Repeat(1, p.Count).ToArray()).ToList(),
                Options = options,
            };
            var result = _model.Generate(request, cancellationToken);
            for (int j = 0; j < rows.Length; j++) labels[rows[j]] = _model.Decode(result.NewTokens[j]).Trim();
            progress?.Invoke(start + rows.Length, order.Length);
        }
        return labels;
    }
}
