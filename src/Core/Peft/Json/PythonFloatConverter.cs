using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// For keys PEFT types as float (lora_dropout, encoder_dropout): written as Python writes a float, so 0.0 stays
/// "0.0" rather than .NET's "0".
/// </summary>
public sealed class PythonFloatConverter : JsonConverter<double>
{
    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Number ? reader.GetDouble() : throw new JsonException("expected a number");

    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options) =>
        writer.WriteRawValue(double.IsFinite(value) ? PythonFloat.Repr(value) : value > 0 ? "Infinity" : value < 0 ? "-Infinity" : "NaN", skipInputValidation: true);
}
