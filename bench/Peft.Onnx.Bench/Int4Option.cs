using System.Diagnostics;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Quantization;

namespace Peft.Onnx.Bench;

/// <summary>
/// An int4 export other than the default (block 128, int8 attention and head over an int4 MLP): a smaller block, or
/// int4 attention and/or head, trade speed against accuracy. bench --quantize decodes each beside the default exports
/// to show what ONNX Runtime's kernels give each choice here (their accuracy: README's quantized-export table).
/// </summary>
public sealed record Int4Option(string Name, int? BlockSize, string? HeadBits, string? AttentionBits)
{
    /// <summary>The options measured: what `export --quantize int4 [--block-size B] [--attention-quantize int4] [--head-quantize int4]` writes.</summary>
    public static readonly IReadOnlyList<Int4Option> All =
    [
        new("int4-b32", 32, null, null),
        new("int4-attention4", null, null, "int4"),
        new("int4-head4", null, "int4", null),
        new("int4-all4", null, "int4", "int4"),
    ];

    /// <summary>The export options as given on the command line.</summary>
    public string Arguments => "--quantize int4" + (BlockSize is { } b ? $" --block-size {b}" : "")
        + (AttentionBits != null ? $" --attention-quantize {AttentionBits}" : "") + (HeadBits != null ? $" --head-quantize {HeadBits}" : "");

    public WeightQuantization Quantization => WeightQuantization.FromOptions("int4", BlockSize, false, null, false, false, HeadBits, AttentionBits)!;

    /// <summary>Exports <paramref name="checkpoint"/> so quantized into <paramref name="outDir"/> in this process (no ORT check); seconds taken.</summary>
    public double Export(string checkpoint, string outDir)
    {
        var clock = Stopwatch.StartNew();
        OnnxExport.Export(checkpoint, null, outDir, new ExportOptions { Quantize = Quantization, Overwrite = true, Verify = false });
        return clock.Elapsed.TotalSeconds;
    }
}
