using System.Globalization;

namespace Peft.Onnx.Core.Onnx;

/// <summary>
/// Names of a decoder-only multi-adapter export's stacked prefixes (prefix tuning, and prompt tuning / p-tuning baked to
/// keys and values), shared by the exporter that writes them and the Runtime that feeds grown copies: per layer the keys
/// transposed [slots, query_heads, head_dim, prefix_length] and the values [slots, query_heads, prefix_length, head_dim]
/// (float32, each slot's prefix at the back, padding in front), and per slot the int64 mask [slots, prefix_length] (1 on
/// the slot's own tokens) and position offset [slots] (its length). The base slot is last and all zeros.
/// </summary>
public static class PrefixStackNames
{
    private const string Prefix = "prompt.stacked.";
    private const string KeySuffix = ".key_t";
    private const string ValueSuffix = ".value";

    public static string Key(int layer) => Prefix + layer.ToString(CultureInfo.InvariantCulture) + KeySuffix;
    public static string Value(int layer) => Prefix + layer.ToString(CultureInfo.InvariantCulture) + ValueSuffix;
    public const string Mask = "prompt.stacked.mask";
    public const string PositionOffset = "prompt.stacked.position_offset";

    /// <summary>The layer of a stacked key or value name, and whether it is the keys; null for any other name.</summary>
    public static (int Layer, bool IsKey)? Parse(string name)
    {
        if (!name.StartsWith(Prefix, StringComparison.Ordinal)) return null;
        bool key = name.EndsWith(KeySuffix, StringComparison.Ordinal);
        if (!key && !name.EndsWith(ValueSuffix, StringComparison.Ordinal)) return null;
        var middle = name[Prefix.Length..^(key ? KeySuffix.Length : ValueSuffix.Length)];
        return int.TryParse(middle, NumberStyles.None, CultureInfo.InvariantCulture, out int layer) ? (layer, key) : null;
    }
}
