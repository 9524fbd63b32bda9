using Peft.Onnx.Core.Peft;

namespace Peft.Onnx.Tests.Support;

/// <summary>An adapter_config.json given as text, parsed as a file at <c>path</c> would be (errors name that path).</summary>
public static class AdapterConfigJson
{
    public static AdapterConfig Parse(string json, string path = "test/adapter_config.json") =>
        AdapterConfig.Parse(System.Text.Encoding.UTF8.GetBytes(json), path);
}
