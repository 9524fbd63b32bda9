using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime.Requests;

/// <summary>
/// Serves a list of requests in batches of up to batchSize rows, in file order, whatever their adapters: each batch
/// is one generation whose rows each run their own adapter. A batch runs to its longest row's limit; each row keeps
/// its own max_new_tokens.
/// </summary>
public static class RequestBatches
{
    public static IReadOnlyList<RequestResult> Run(OnnxModel model, IReadOnlyList<RequestLine> requests, int batchSize, GenerationOptions options,
        CancellationToken cancellationToken = default)
    {
        if (batchSize < 1) throw new PeftOnnxException($"batch size {batchSize} must be at least 1");
        // unknown adapters are refused before any batch runs
        _ = model.AdapterIndices(requests.Select(r => r.Adapter).ToArray());
        var results = new List<RequestResult>(requests.Count);
        foreach (var chunk in requests.Chunk(batchSize))
        {
            var prompts = chunk.Select(r => r.InputIds ?? (IReadOnlyList<int>)model.Encode(r.Prompt!)).ToArray();
            int? limit = chunk.Any(r => r.MaxNewTokens == null) ? options.MaxNewTokens : chunk.Max(r => r.MaxNewTokens);
            var request = new GenerationRequest
            {
                InputIds = prompts,
                Adapters = chunk.Select(r => r.Adapter).ToArray(),
                Options = options with { MaxNewTokens = limit },
            };
            var result = model.Generate(request, cancellationToken);
            for (int i = 0; i < chunk.Length; i++)
            {
                var newTokens = result.NewTokens[i];
                if (chunk[i].MaxNewTokens is { } own && newTokens.Length > own) newTokens = newTokens[..own];
                var sequence = prompts[i].Concat(newTokens).ToArray();
                results.Add(new RequestResult(chunk[i].Id, chunk[i].Adapter, sequence, newTokens, model.HasTokenizer ? model.Decode(newTokens) : null));
            }
        }
        return results;
    }
}
