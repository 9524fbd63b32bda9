using System.Text.Json.Nodes;

namespace Peft.Onnx.Tests.Support;

/// <summary>JSON files an export writes, read for editing or inspection.</summary>
public static class JsonFiles
{
    public static JsonObject ReadObject(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();
}
