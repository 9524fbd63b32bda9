using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>Typed reads of optional JSON fields that report the key on a type mismatch.</summary>
internal static class JsonFields
{
    public static JsonDocument ParseFile(string path)
    {
        var options = new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };
        return JsonDocument.Parse(File.ReadAllBytes(path), options);
    }

    public static JsonElement? Get(JsonElement obj, string key) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : null;

    public static string? String(JsonElement obj, string key) => Get(obj, key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        _ => throw new InvalidDataException($"'{key}' should be a string"),
    };

    public static bool? Bool(JsonElement obj, string key) => Get(obj, key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => throw new InvalidDataException($"'{key}' should be true or false"),
    };

    public static int? Int(JsonElement obj, string key) => Get(obj, key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out int i) => i,
        _ => throw new InvalidDataException($"'{key}' should be an integer"),
    };

    public static JsonElement Required(JsonElement obj, string key, JsonValueKind kind) =>
        Get(obj, key) is { } v && v.ValueKind == kind
            ? v
            : throw new InvalidDataException($"'{key}' is missing or not a JSON {kind.ToString().ToLowerInvariant()}");
}
