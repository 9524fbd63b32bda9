using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Peft.Onnx.Server.Api;

/// <summary>
/// POST /v1/completions: one prompt (a string, or an array of token ids), OpenAI's sampling fields, streamed as
/// server-sent events when asked. Each choice also carries the generated "token_ids".
/// </summary>
public static class CompletionsEndpoint
{
    /// <summary>OpenAI's default max_tokens for completions.</summary>
    public const int DefaultMaxTokens = 16;

    public static async Task HandleAsync(HttpContext context, ServerState state)
    {
        using var body = await JsonRequest.ReadAsync(context.Request, state.Options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
        var root = body.RootElement;
        var p = JsonRequest.Sampling(root);
        var (model, name, adapter) = state.Find(p.Model);
        var (prompt, fromText) = Prompt(root, model);
        var request = model.Request(prompt, p, DefaultMaxTokens, state.Options.MaxTokensLimit, fromText, adapter);
        var id = "cmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        using var call = new GenerationCall(model, request, p.Stop, context.RequestAborted);
        await call.StartAsync().ConfigureAwait(false);
        if (!p.Stream)
        {
            var outcome = await call.RunAsync(null).ConfigureAwait(false);
            var json = Chunk(id, created, name, outcome.Text, outcome.TokenIds, outcome.FinishReason);
            json["usage"] = Usage.Json(prompt.Length, outcome.TokenIds.Length);
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(json.ToJsonString(), context.RequestAborted).ConfigureAwait(false);
            return;
        }

        Sse.Begin(context.Response);
        var final = await call.RunAsync((text, ids) => Sse.WriteAsync(context.Response, Chunk(id, created, name, text, ids, null))).ConfigureAwait(false);
        await Sse.WriteAsync(context.Response, Chunk(id, created, name, "", [], final.FinishReason)).ConfigureAwait(false);
        if (p.IncludeUsage)
        {
            var usage = new JsonObject
            {
                ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = name,
                ["choices"] = new JsonArray(), ["usage"] = Usage.Json(prompt.Length, final.TokenIds.Length),
            };
            await Sse.WriteAsync(context.Response, usage).ConfigureAwait(false);
        }
        await Sse.DoneAsync(context.Response).ConfigureAwait(false);
    }

    private static JsonObject Chunk(string id, long created, string model, string text, int[] ids, string? finish) => new()
    {
        ["id"] = id,
        ["object"] = "text_completion",
        ["created"] = created,
        ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0, ["text"] = text, ["logprobs"] = null, ["finish_reason"] = finish, ["token_ids"] = Usage.Ids(ids),
        }),
    };

    /// <summary>"prompt": a string, an array of token ids, or a one-element array of either.</summary>
    private static (int[] Ids, bool FromText) Prompt(JsonElement root, ServedModel model)
    {
        if (!JsonRequest.Present(root, "prompt", out var prompt)) throw ApiException.BadRequest("'prompt' is required", "prompt");
        if (prompt.ValueKind == JsonValueKind.Array && prompt.GetArrayLength() == 1 && prompt[0].ValueKind is JsonValueKind.String or JsonValueKind.Array)
            prompt = prompt[0];
        if (prompt.ValueKind == JsonValueKind.String) return (model.Encode(prompt.GetString()!, addSpecialTokens: true), true);
        if (prompt.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType("prompt", "a string or an array of token ids");
        var ids = new List<int>();
        foreach (var e in prompt.EnumerateArray())
        {
            if (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var id)) ids.Add(id);
            else if (e.ValueKind is JsonValueKind.String or JsonValueKind.Array)
                throw ApiException.BadRequest("one prompt per request is served (send the others as their own requests)", "prompt");
            else throw JsonRequest.WrongType("prompt", "a string or an array of token ids");
        }
        return (ids.ToArray(), false);
    }
}
