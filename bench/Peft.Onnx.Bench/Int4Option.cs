using System.Diagnostics;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Quantization;

namespace Peft.Onnx.Bench;

/// <summary>
/// An int4 export other than the default (block 16, int8 head): a larger block and/or an int4 head trade accuracy for
/// fewer bytes per weight and a faster MLAS kernel. bench --quantize decodes each beside the default exports to show
/// the fastest int4 ONNX Runtime's kernels allow here.
/// </summary>
public sealed record Int4Option(string Name, int BlockSize, string? HeadBits)
{
    /// <summary>The options measured: what `export --quantize int4 --block-size B [--head-quantize int4]` writes.</summary>
    public static readonly IReadOnlyList<Int4Option> All =
    [
        new("int4-b32", 32, null),
        new("int4-b32-h4", 32, "int4"),
        new("int4-b64-h4", 64, "int4"),
        new("int4-b128-h4", 128, "int4"),
    ];

    /// <summary>The export options as given on the command line.</summary>
    public string Arguments => $"--quantize int4 --block-size {BlockSize}" + (HeadBits != null ? $" --head-quantize {HeadBits}" : "");

    public WeightQuantization Quantization => WeightQuantization.FromOptions("int4", BlockSize, false, null, false, false, HeadBits)!;

    /// <summary>Exports <paramref name="checkpoint"/> so quantized into <paramref name="outDir"/> in this process (no ORT check); seconds taken.</summary>
    public double Export(string checkpoint, string outDir)
    {
        var clock = Stopwatch.StartNew();
        OnnxExport.Export(checkpoint, null, outDir, new ExportOptions { Quantize = Quantization, Overwrite = true, Verify = false });
        return clock.Elapsed.TotalSeconds;
    }
}
