using Peft.Onnx.Runtime;

namespace Peft.Onnx.Bench.Load;

/// <summary>One distinct prompt of the run and its answer from a sequential greedy run (the reference every concurrent request must equal).</summary>
public sealed record LoadPrompt(int Index, GenerationRequest Request, int[] ExpectedTokens, string? ExpectedText, double SequentialSeconds)
{
    /// <summary>
    /// <paramref name="count"/> prompts of <paramref name="length"/>/2 to <paramref name="length"/> pseudo-random ids in
    /// [3, vocab) (past pad/eos of the bundled models), from <paramref name="seed"/>. With a tokenizer they are sent as the
    /// decoded text, as an application would, so tokenization runs concurrently too. Greedy, no stop token: every request
    /// does the same work and has exactly one right answer.
    /// </summary>
    public static List<GenerationRequest> Requests(OnnxModel model, int count, int length, int newTokens, int seed)
    {
        var options = new GenerationOptions { MaxNewTokens = newTokens, DoSample = false, StopTokenIds = [] };
        var random = new Random(seed);
        var requests = new List<GenerationRequest>(count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int low = Math.Max(1, length / 2), vocab = model.VocabSize;
        for (int attempt = 0; requests.Count < count; attempt++)
        {
            if (attempt > 100 * count) throw new Core.PeftOnnxException($"load: cannot make {count} distinct prompts of {low}..{length} tokens (vocabulary {vocab}); lower --prompts");
            var ids = Enumerable.Range(0, random.Next(low, length + 1)).Select(_ => 3 + random.Next(Math.Max(1, vocab - 3))).ToArray();
            var text = model.HasTokenizer ? model.Decode(ids) : null;
            var key = text ?? string.Join(',', ids);
            if ((text != null && string.IsNullOrWhiteSpace(text)) || !seen.Add(key)) continue;
            requests.Add(text != null ? GenerationRequest.FromText(text, options) : GenerationRequest.FromIds(ids, options));
        }
        return requests;
    }
}
