using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// LoRA's init_lora_weights, which PEFT 0.7.1 types as <c>bool | "gaussian" | "loftq"</c>:
/// true = Kaiming-uniform A and zero B (the adapter starts as a no-op); false = both keep nn.Linear's random
/// init; "gaussian" = A ~ N(0, 1/r), zero B; "loftq" = LoftQ initialisation (needs loftq_config).
/// </summary>
[JsonConverter(typeof(InitLoraWeightsConverter))]
public sealed record InitLoraWeights
{
    private InitLoraWeights(bool? flag, string? method) { Flag = flag; Method = method; }

    public static readonly InitLoraWeights Default = new(true, null);
    public static readonly InitLoraWeights Random = new(false, null);
    public static readonly InitLoraWeights Gaussian = new(null, "gaussian");
    public static readonly InitLoraWeights Loftq = new(null, "loftq");

    public static InitLoraWeights FromFlag(bool flag) => flag ? Default : Random;
    public static InitLoraWeights FromMethod(string method) => new(null, method);

    /// <summary>The boolean form (true or false), or null for a named method.</summary>
    public bool? Flag { get; }

    /// <summary>The named form ("gaussian", "loftq"), or null for a boolean.</summary>
    public string? Method { get; }

    /// <summary>Whether PEFT accepts this value.</summary>
    public bool IsKnown => Flag is not null || Method is "gaussian" or "loftq";

    public override string ToString() => Flag is bool b ? (b ? "true" : "false") : $"\"{Method}\"";
}

public sealed class InitLoraWeightsConverter : JsonConverter<InitLoraWeights>
{
    public override InitLoraWeights Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.True => InitLoraWeights.Default,
        JsonTokenType.False => InitLoraWeights.Random,
        JsonTokenType.String => InitLoraWeights.FromMethod(reader.GetString()!),
        _ => throw new JsonException("expected true, false, \"gaussian\" or \"loftq\""),
    };

    public override void Write(Utf8JsonWriter writer, InitLoraWeights value, JsonSerializerOptions options)
    {
        if (value.Flag is bool flag) writer.WriteBooleanValue(flag);
        else writer.WriteStringValue(value.Method);
    }
}
