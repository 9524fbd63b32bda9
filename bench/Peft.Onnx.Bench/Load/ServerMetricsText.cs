using System.Globalization;
using Peft.Onnx.Core;

namespace Peft.Onnx.Bench.Load;

/// <summary>The few lines of a `peft-onnx serve` /metrics page that `load --url` reads: resident memory, tokens and scheduling mode.</summary>
public sealed record ServerMetricsText(long RssBytes, long Tokens, string Mode)
{
    private const string RssName = "process_resident_memory_bytes";
    private const string TokensName = "peft_onnx_generated_tokens_total";
    private const string ModePrefix = "peft_onnx_scheduling{mode=\"";

    /// <summary>Reads the page; a page without resident memory is not a peft-onnx server's (one-line error naming the URL).</summary>
    public static ServerMetricsText Parse(string page, Uri url)
    {
        long? rss = null, tokens = null;
        string mode = "unknown";
        foreach (var line in page.Split('\n'))
        {
            if (line.StartsWith(ModePrefix, StringComparison.Ordinal)) mode = line[ModePrefix.Length..line.IndexOf('"', ModePrefix.Length)];
            else if (Value(line, RssName) is { } r) rss = r;
            else if (Value(line, TokensName) is { } t) tokens = t;
        }
        if (rss == null)
            throw new PeftOnnxException($"load: {url}metrics has no {RssName} line (expected a running peft-onnx serve)");
        return new ServerMetricsText(rss.Value, tokens ?? 0, mode);
    }

    private static long? Value(string line, string name) =>
        line.StartsWith(name + " ", StringComparison.Ordinal)
        && double.TryParse(line.AsSpan(name.Length + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? (long)v : null;
}
