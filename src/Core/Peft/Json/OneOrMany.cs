using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// A key PEFT types as "X or list of X" (layers_to_transform: int | list[int]; layers_pattern: str | list[str]).
/// Remembers which form the file used so it is written back the same way. T is int or string.
/// </summary>
[JsonConverter(typeof(OneOrManyConverterFactory))]
public sealed class OneOrMany<T>
{
    public OneOrMany(T single) { Values = [single]; IsSingle = true; }
    public OneOrMany(IEnumerable<T> values) { Values = values.ToArray(); IsSingle = false; }

    public IReadOnlyList<T> Values { get; }

    /// <summary>True when the JSON value was a scalar rather than a list.</summary>
    public bool IsSingle { get; }

    public bool Contains(T value) => Values.Contains(value);

    public override string ToString() => IsSingle ? $"{Values[0]}" : $"[{string.Join(", ", Values)}]";
}

public sealed class OneOrManyConverterFactory : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) =>
        typeToConvert.IsGenericType && typeToConvert.GetGenericTypeDefinition() == typeof(OneOrMany<>);

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(OneOrManyConverter<>).MakeGenericType(typeToConvert.GetGenericArguments()[0]))!;
}

public sealed class OneOrManyConverter<T> : JsonConverter<OneOrMany<T>>
{
    public override OneOrMany<T>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartArray) return new OneOrMany<T>(ReadItem(ref reader));
        var items = new List<T>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) items.Add(ReadItem(ref reader));
        return new OneOrMany<T>(items);
    }

    /// <summary>Read here rather than by a nested Deserialize, so an error keeps the key's path.</summary>
    private static T ReadItem(ref Utf8JsonReader reader)
    {
        if (typeof(T) == typeof(int) && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var i)) return (T)(object)i;
        if (typeof(T) == typeof(string) && reader.TokenType == JsonTokenType.String) return (T)(object)reader.GetString()!;
        throw new JsonException($"expected {(typeof(T) == typeof(int) ? "an integer" : "a string")} or a list of them");
    }

    public override void Write(Utf8JsonWriter writer, OneOrMany<T> value, JsonSerializerOptions options)
    {
        if (value.IsSingle) JsonSerializer.Serialize(writer, value.Values[0], options);
        else JsonSerializer.Serialize(writer, value.Values, options);
    }
}
