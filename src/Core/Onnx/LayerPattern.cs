using System.Globalization;

namespace Peft.Onnx.Core.Onnx;

/// <summary>
/// Per-layer tensor names are kept as one pattern with "%d" for the layer index: the form ORT GenAI's
/// genai_config.json takes, so the pattern written there and the names the graphs use cannot drift apart.
/// </summary>
public static class LayerPattern
{
    public const string Placeholder = "%d";

    /// <summary><paramref name="pattern"/> with its "%d" replaced by <paramref name="layer"/>.</summary>
    public static string Format(string pattern, int layer) =>
        pattern.Replace(Placeholder, layer.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
}
