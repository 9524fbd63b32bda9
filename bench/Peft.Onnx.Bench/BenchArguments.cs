using System.Globalization;
using Peft.Onnx.Core;

namespace Peft.Onnx.Bench;

/// <summary>bench's list-valued options, parsed and checked (one-line errors naming the option and what it takes).</summary>
public static class BenchArguments
{
    /// <summary>Parts --skip can leave out.</summary>
    public static readonly string[] Parts = ["generation", "genai", "export", "trainer"];

    /// <summary>A comma-separated option's entries (empty when not given).</summary>
    public static string[] List(string? text) =>
        (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>--batch-sizes, or the defaults (1,8; 1,2 with --quick).</summary>
    public static int[] BatchSizes(string? text, bool quick)
    {
        if (text == null) return quick ? [1, 2] : [1, 8];
        var batches = List(text).Select(b => int.TryParse(b, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 1 ? v
            : throw new PeftOnnxException($"bench: --batch-sizes '{b}' is not an integer >= 1")).ToArray();
        return batches.Length > 0 ? batches : throw new PeftOnnxException("bench: --batch-sizes is empty (expected e.g. 1,8)");
    }

    /// <summary>Refuses an unknown --skip part, --decode-models model or --quantize width.</summary>
    public static void Check(string[] skip, string[] decodeModels, string[] quantize)
    {
        foreach (var m in decodeModels)
            if (!DecodeBandwidthBench.Models.ContainsKey(m))
                throw new PeftOnnxException($"bench: --decode-models '{m}' is not one of {string.Join(", ", DecodeBandwidthBench.Models.Keys)}");
        foreach (var k in skip) if (!Parts.Contains(k)) throw new PeftOnnxException($"bench: --skip '{k}' is not one of {string.Join(", ", Parts)}");
        foreach (var w in quantize)
            if (!QuantizedDecodeBench.Widths.Contains(w)) throw new PeftOnnxException($"bench: --quantize '{w}' is not one of {string.Join(", ", QuantizedDecodeBench.Widths)}");
        if (quantize.Distinct().Count() != quantize.Length) throw new PeftOnnxException($"bench: --quantize {string.Join(",", quantize)} names a width twice");
    }
}
