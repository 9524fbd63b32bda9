namespace Peft.Onnx.Exporter.Graphs;

/// <summary>Hugging Face module paths ("transformer.h.0.mlp") as ONNX node-name scopes ("/transformer/h.0/mlp").</summary>
public static class ModulePath
{
    /// <summary>Dots become slashes, except before a layer index, which stays with its container ("h.0").</summary>
    public static string ToScope(string modulePath)
    {
        var parts = modulePath.Split('.');
        var segments = new List<string>();
        foreach (var p in parts)
        {
            if (segments.Count > 0 && p.Length > 0 && p.All(char.IsAsciiDigit)) segments[^1] += "." + p;
            else segments.Add(p);
        }
        return "/" + string.Join("/", segments);
    }
}
