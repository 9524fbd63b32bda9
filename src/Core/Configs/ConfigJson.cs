using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Onnx.Core.Configs;

/// <summary>Shared JSON settings for Hugging Face and PEFT configs: snake_case keys, comments tolerated, bounded depth.</summary>
public static class ConfigJson
{
    public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        MaxDepth = 64,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public static object Deserialize(byte[] json, Type type, string path)
    {
        try
        {
            return JsonSerializer.Deserialize(json, type, Options) ?? throw new PeftOnnxException($"{path}: expected a JSON object, found null");
        }
        catch (JsonException ex) { throw Invalid(path, ex); }
        catch (NotSupportedException ex) { throw new PeftOnnxException($"{path}: {MessageText.OneLine(ex.Message.Split('\n')[0])}"); }
        catch (InvalidOperationException ex) { throw new PeftOnnxException($"{path}: {MessageText.OneLine(ex.Message.Split('\n')[0])}"); }
    }

    public static T Deserialize<T>(byte[] json, string path) => (T)Deserialize(json, typeof(T), path);

    /// <summary>A JSON error as one line that names the file and, where known, the key.</summary>
    public static PeftOnnxException Invalid(string path, JsonException ex)
    {
        var where = string.IsNullOrEmpty(ex.Path) || ex.Path == "$" ? "" : $" at '{ex.Path.TrimStart('$', '.')}'";
        return new PeftOnnxException(MessageText.OneLine($"{path}: invalid JSON{where}: {ex.Message.Split('\n')[0].Split(". Path:")[0]}"));
    }

    /// <summary>
    /// Reads every string and key of the document once, so text that cannot become a .NET string (an escaped lone
    /// surrogate such as "\udc00") fails at load with InvalidOperationException rather than when the config is saved.
    /// </summary>
    public static void CheckStrings(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in element.EnumerateObject()) { _ = p.Name; CheckStrings(p.Value); }
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray()) CheckStrings(item);
                break;
            case JsonValueKind.String:
                _ = element.GetString();
                break;
        }
    }
}

/// <summary>Token-id keys are an int in most configs and a list in some (several eos ids).</summary>
public sealed class TokenIdsConverter : JsonConverter<int[]?>
{
    public override int[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.Number: return [reader.GetInt32()];
            case JsonTokenType.StartArray:
                var ids = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number) throw new JsonException("token ids must be integers");
                    ids.Add(reader.GetInt32());
                }
                return ids.ToArray();
            default: throw new JsonException("expected a token id or a list of token ids");
        }
    }

    public override void Write(Utf8JsonWriter writer, int[]? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else if (value.Length == 1) writer.WriteNumberValue(value[0]);
        else { writer.WriteStartArray(); foreach (var v in value) writer.WriteNumberValue(v); writer.WriteEndArray(); }
    }
}
