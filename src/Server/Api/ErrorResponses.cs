using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Peft.Onnx.Server.Api;

/// <summary>Writes OpenAI's error object {"error": {"message", "type", "param", "code"}}; never a stack trace.</summary>
public static class ErrorResponses
{
    public static JsonObject Body(string message, string type, string? param, string? code) => new()
    {
        ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = param, ["code"] = code },
    };

    public static async Task WriteAsync(HttpContext context, ApiException error)
    {
        if (context.Response.HasStarted) return;
        context.Response.StatusCode = error.Status;
        if (error.RetryAfterSeconds is { } seconds) context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(Body(error.Message, error.Type, error.Param, error.Code).ToJsonString(), context.RequestAborted).ConfigureAwait(false);
    }
}
