using System.Text.Json;

namespace Peft.Onnx.Server.Api;

/// <summary>Reads and type-checks a request body's fields; a wrong type is a 400 naming the field.</summary>
public static class JsonRequest
{
    /// <summary>Reads at most <paramref name="limit"/> bytes of body (413 beyond) and parses it as a JSON object (400 otherwise).</summary>
    public static async Task<JsonDocument> ReadAsync(Microsoft.AspNetCore.Http.HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength > limit) throw TooLarge(limit);
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > limit) throw TooLarge(limit);
            buffer.Write(chunk, 0, read);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(buffer.ToArray());
        }
        catch (JsonException ex)
        {
            throw ApiException.BadRequest($"the body is not valid JSON: {ex.Message.Split('\n')[0]}");
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            throw ApiException.BadRequest("the body must be a JSON object");
        }
        return document;
    }

    private static ApiException TooLarge(long limit) =>
        new(413, $"the body is larger than {limit} bytes", code: "request_too_large");

    public static string RequiredString(JsonElement body, string name) =>
        String(body, name) ?? throw ApiException.BadRequest($"'{name}' is required", name);

    public static string? String(JsonElement body, string name)
    {
        if (!Present(body, name, out var value)) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw WrongType(name, "a string");
    }

    public static bool? Bool(JsonElement body, string name)
    {
        if (!Present(body, name, out var value)) return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(name, "a boolean"),
        };
    }

    public static double? Number(JsonElement body, string name)
    {
        if (!Present(body, name, out var value)) return null;
        return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw WrongType(name, "a number");
    }

    public static long? Integer(JsonElement body, string name)
    {
        if (!Present(body, name, out var value)) return null;
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) ? n : throw WrongType(name, "an integer");
    }

    /// <summary>A field that is absent or null reads as absent, as OpenAI's API does.</summary>
    public static bool Present(JsonElement body, string name, out JsonElement value) =>
        body.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public static ApiException WrongType(string name, string expected) => ApiException.BadRequest($"'{name}' must be {expected}", name);

    /// <summary>The fields completions and chat share.</summary>
    public static SamplingParameters Sampling(JsonElement body, string maxTokensName = "max_tokens")
    {
        var model = RequiredString(body, "model");
        long? maxTokens = Integer(body, maxTokensName);
        if (maxTokensName != "max_tokens") maxTokens ??= Integer(body, "max_tokens");
        if (maxTokens is <= 0) throw ApiException.BadRequest($"'max_tokens' = {maxTokens} must be at least 1", "max_tokens");
        if (maxTokens > int.MaxValue) throw ApiException.BadRequest($"'max_tokens' = {maxTokens} is too large", "max_tokens");
        var temperature = Number(body, "temperature");
        if (temperature is < 0 or > 2 || temperature is { } t && !double.IsFinite(t)) throw ApiException.BadRequest($"'temperature' = {temperature} must be in [0, 2]", "temperature");
        var topP = Number(body, "top_p");
        if (topP is not null and (<= 0 or > 1)) throw ApiException.BadRequest($"'top_p' = {topP} must be in (0, 1]", "top_p");
        long? topK = Integer(body, "top_k");
        if (topK is < 0 or > int.MaxValue) throw ApiException.BadRequest($"'top_k' = {topK} must be >= 0 (0 = off)", "top_k");
        long? seed = Integer(body, "seed");
        long? n = Integer(body, "n");
        if (n is not null and not 1) throw ApiException.BadRequest($"'n' = {n}: one choice per request is served", "n");
        var stream = Bool(body, "stream") ?? false;
        bool includeUsage = false;
        if (Present(body, "stream_options", out var options))
        {
            if (options.ValueKind != JsonValueKind.Object) throw WrongType("stream_options", "an object");
            includeUsage = Bool(options, "include_usage") ?? false;
        }
        return new SamplingParameters(model, (int?)maxTokens, temperature, topP, (int?)topK, seed is { } s ? unchecked((ulong)s) : null, Stops(body), stream, includeUsage,
            Bool(body, "ignore_eos") ?? false);
    }

    private static string[] Stops(JsonElement body)
    {
        if (!Present(body, "stop", out var stop)) return [];
        if (stop.ValueKind == JsonValueKind.String) return NonEmpty([stop.GetString()!]);
        if (stop.ValueKind != JsonValueKind.Array) throw WrongType("stop", "a string or an array of strings");
        var list = new List<string>();
        foreach (var s in stop.EnumerateArray())
            list.Add(s.ValueKind == JsonValueKind.String ? s.GetString()! : throw WrongType("stop", "a string or an array of strings"));
        if (list.Count > 4) throw ApiException.BadRequest($"'stop' has {list.Count} sequences; at most 4", "stop");
        return NonEmpty(list);
    }

    private static string[] NonEmpty(IEnumerable<string> stops)
    {
        var list = stops.ToArray();
        if (list.Any(s => s.Length == 0)) throw ApiException.BadRequest("'stop' holds an empty string", "stop");
        return list;
    }
}
