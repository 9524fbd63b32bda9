using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Peft.Onnx.Runtime.Chat;

namespace Peft.Onnx.Server.Api;

/// <summary>
/// POST /v1/chat/completions: the messages rendered with the folder's chat template (add_generation_prompt), then
/// generated as a completion of that text; streamed as chat.completion.chunk events when asked.
/// </summary>
public static class ChatEndpoint
{
    public static async Task HandleAsync(HttpContext context, ServerState state)
    {
        using var body = await JsonRequest.ReadAsync(context.Request, state.Options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
        var root = body.RootElement;
        var p = JsonRequest.Sampling(root, "max_completion_tokens");
        var (model, name, adapter) = state.Find(p.Model);
        var messages = Messages(root);
        var template = model.Chat.Template
            ?? throw ApiException.BadRequest($"model '{name}' has no chat template: {model.Chat.Missing}; use /v1/completions", "messages", "chat_template_missing");
        string rendered;
        try
        {
            rendered = template.Render(messages, model.Chat.BosToken, model.Chat.EosToken, addGenerationPrompt: true);
        }
        catch (TemplateException ex)
        {
            throw ApiException.BadRequest($"the chat template refused the messages: {ex.Message}", "messages");
        }
        var prompt = model.Encode(rendered, addSpecialTokens: false);
        var request = model.Request(prompt, p, state.Options.MaxTokensLimit, state.Options.MaxTokensLimit, fromText: true, adapter);
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        using var call = new GenerationCall(model, request, p.Stop, context.RequestAborted);
        await call.StartAsync().ConfigureAwait(false);
        if (!p.Stream)
        {
            var outcome = await call.RunAsync(null).ConfigureAwait(false);
            var json = new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion", ["created"] = created, ["model"] = name,
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = outcome.Text },
                    ["logprobs"] = null,
                    ["finish_reason"] = outcome.FinishReason,
                    ["token_ids"] = Usage.Ids(outcome.TokenIds),
                }),
                ["usage"] = Usage.Json(prompt.Length, outcome.TokenIds.Length),
            };
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(json.ToJsonString(), context.RequestAborted).ConfigureAwait(false);
            return;
        }

        Sse.Begin(context.Response);
        await Sse.WriteAsync(context.Response, Chunk(id, created, name, new JsonObject { ["role"] = "assistant", ["content"] = "" }, [], null)).ConfigureAwait(false);
        var final = await call.RunAsync((text, ids) =>
            Sse.WriteAsync(context.Response, Chunk(id, created, name, new JsonObject { ["content"] = text }, ids, null))).ConfigureAwait(false);
        await Sse.WriteAsync(context.Response, Chunk(id, created, name, new JsonObject(), [], final.FinishReason)).ConfigureAwait(false);
        if (p.IncludeUsage)
        {
            var usage = new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = name,
                ["choices"] = new JsonArray(), ["usage"] = Usage.Json(prompt.Length, final.TokenIds.Length),
            };
            await Sse.WriteAsync(context.Response, usage).ConfigureAwait(false);
        }
        await Sse.DoneAsync(context.Response).ConfigureAwait(false);
    }

    private static JsonObject Chunk(string id, long created, string model, JsonObject delta, int[] ids, string? finish) => new()
    {
        ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finish, ["token_ids"] = Usage.Ids(ids),
        }),
    };

    /// <summary>"messages": objects with a role and content (a string, or text parts).</summary>
    private static IReadOnlyList<ChatMessage> Messages(JsonElement root)
    {
        if (!JsonRequest.Present(root, "messages", out var messages)) throw ApiException.BadRequest("'messages' is required", "messages");
        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0) throw JsonRequest.WrongType("messages", "a non-empty array of messages");
        var list = new List<ChatMessage>();
        foreach (var m in messages.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType("messages", "an array of objects with 'role' and 'content'");
            var role = JsonRequest.String(m, "role") ?? throw ApiException.BadRequest("a message has no 'role'", "messages");
            string content = "";
            if (JsonRequest.Present(m, "content", out var c))
            {
                if (c.ValueKind == JsonValueKind.String) content = c.GetString()!;
                else if (c.ValueKind == JsonValueKind.Array)
                    content = string.Concat(c.EnumerateArray().Select(part =>
                        part.ValueKind == JsonValueKind.Object && JsonRequest.String(part, "type") == "text" ? JsonRequest.String(part, "text") ?? ""
                        : throw ApiException.BadRequest("only text content parts are served", "messages")));
                else throw JsonRequest.WrongType("messages", "messages whose 'content' is a string or an array of text parts");
            }
            list.Add(new ChatMessage(role, content));
        }
        return list;
    }
}
