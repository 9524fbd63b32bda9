using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Peft.Onnx.Server.Api;

/// <summary>Server-sent events as OpenAI streams them: "data: {json}" events, then "data: [DONE]".</summary>
public static class Sse
{
    public static void Begin(HttpResponse response)
    {
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    public static async Task WriteAsync(HttpResponse response, JsonObject data)
    {
        await response.WriteAsync("data: " + data.ToJsonString() + "\n\n").ConfigureAwait(false);
        await response.Body.FlushAsync().ConfigureAwait(false);
    }

    public static async Task DoneAsync(HttpResponse response)
    {
        await response.WriteAsync("data: [DONE]\n\n").ConfigureAwait(false);
        await response.Body.FlushAsync().ConfigureAwait(false);
    }
}
