namespace Peft.Onnx.Server.Api;

/// <summary>A request the server refuses, answered with OpenAI's error object and <paramref name="status"/>.</summary>
public sealed class ApiException(int status, string message, string type = "invalid_request_error", string? param = null, string? code = null, int? retryAfterSeconds = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    public int? RetryAfterSeconds { get; } = retryAfterSeconds;

    public static ApiException BadRequest(string message, string? param = null, string? code = null) => new(400, message, param: param, code: code);
}
