using System.Globalization;
using System.Diagnostics;
using System.Text.Json;
using Peft.Onnx.Bench;
using Peft.Onnx.Core;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Quantization;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `export`: compiles a Hugging Face model (+ a PEFT adapter) into a self-contained ONNX folder (graphs, external
/// data, genai_config.json, config and tokenizer files). The folder appears complete and checked with ONNX Runtime,
/// or not at all; a non-empty --out is refused unless --force. Seconds and peak RSS go to stderr (or --json).
/// </summary>
public sealed class ExportCommand : ICommand
{
    public string Name => "export";
    public string Summary => "compile base model + adapter into ONNX (LoRA/IA3 merged, or --no-merge), checked with ONNX Runtime";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        SharedOptions.Base(),
        VerbOption.Repeated("adapter", "DIR|NAME=DIR", "the PEFT adapter folder to compile in; NAME=DIR (repeatable) keeps named LoRA adapters beside one base, chosen per request"),
        VerbOption.Value("out", "DIR", "the folder to write (must be empty or absent unless --force)"),
        VerbOption.Flag("no-merge", "keep a LoRA adapter's A/B as a side branch instead of merging it into the weights"),
        VerbOption.Value("dtype", "fp32|fp16", "the weights' type in the export", "fp32"),
        VerbOption.Value("quantize", "int8|int4", "quantize every linear layer's weights (the output head too) into MatMulNBits; norms and embeddings stay float32"),
        VerbOption.Value("block-size", "N", "with --quantize: inputs per scale, a power of two of at least 16", $"{QuantizationFormat.DefaultBlockSize} (int4: {QuantizationFormat.DefaultInt4BlockSize})"),
        VerbOption.Flag("asymmetric", "with --quantize: a zero point per block (default symmetric)"),
        VerbOption.Value("accuracy-level", "0..4", "with --quantize: MatMulNBits compute precision (4: int8 activations, fastest on the CPU)", WeightQuantization.DefaultAccuracyLevel.ToString(CultureInfo.InvariantCulture)),
        VerbOption.Flag("keep-head-float", "with --quantize: leave the output head in float32"),
        VerbOption.Value("head-quantize", "int8|int4", "with --quantize: the output head's own width (default int8 for both: an int4 body gets an int8 head, a mixed precision)"),
        VerbOption.Value("attention-quantize", "int8|int4", "with --quantize: the attention layers' width (default int8 for both; with --head-quantize int4 too, int4 quantizes all to int4)"),
        VerbOption.Flag("quantize-head", "with --quantize: quantize the output head too (the default; the opposite of --keep-head-float)"),
        VerbOption.Flag("prefix-slots", "with NAME=DIR adapters and none of them prompt-learning: carry prefix stacks so prefix-tuning adapters can be added at run time"),
        VerbOption.Flag("force", "replace a non-empty --out"),
        SharedOptions.Json,
    ];

    public int Run(ArgReader args)
    {
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder");
        var adapterArgs = args.Strings("adapter");
        var named = NamedAdapter.ParseAll(adapterArgs);
        var adapterDir = named == null ? adapterArgs.FirstOrDefault() : null;
        if (adapterDir != null && !Directory.Exists(adapterDir)) throw new PeftOnnxException($"export: --adapter {adapterDir}: folder not found");
        var outDir = args.Required("out", "the folder to write the ONNX export to");
        var noMerge = args.Flag("no-merge");
        var dtype = args.Choice("dtype", "fp32", "fp32", "fp16");
        // the settings that have declared defaults count only where given: without --quantize they are refused
        int? GivenInt(string name) => args.Given(name) && args.Int(name) is { } value ? value : null;
        var quantize = WeightQuantization.FromOptions(args.String("quantize"), GivenInt("block-size"), args.Flag("asymmetric"), GivenInt("accuracy-level"),
            args.Flag("keep-head-float"), args.Flag("quantize-head"), args.String("head-quantize"), args.String("attention-quantize"));
        var force = args.Flag("force");
        var json = args.Flag("json");
        var prefixSlots = args.Flag("prefix-slots");
        args.EnsureAllUsed();
        if (prefixSlots && named == null) throw new PeftOnnxException("export: --prefix-slots applies to named adapters (--adapter NAME=DIR): it reserves prefix stacks in a multi-adapter export");
        if (noMerge && adapterDir is null) throw new PeftOnnxException("export: --no-merge needs --adapter (it keeps the adapter's LoRA branches beside the base weights)");

        var options = new ExportOptions
        {
            Merge = !noMerge,
            DType = dtype == "fp16" ? ExportDType.Fp16 : ExportDType.Fp32,
            Overwrite = force,
            Quantize = quantize,
            PrefixSlots = prefixSlots,
        };
        var clock = Stopwatch.StartNew();
        var phases = new ExportPhases(clock);
        if (named != null && noMerge) throw new PeftOnnxException("export: --no-merge applies to a single unnamed --adapter (named adapters always stay unmerged)");
        var result = named != null
            ? MultiAdapterExport.Export(baseDir, named, outDir, options with { OnPhase = phases.Begin })
            : OnnxExport.Export(baseDir, adapterDir, outDir, options with { OnPhase = phases.Begin });
        var seconds = clock.Elapsed.TotalSeconds;
        phases.End();
        var peak = phases.Peak;
        var files = Directory.EnumerateFiles(result.OutDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        long bytes = result.Models.Sum(m => m.ModelBytes + m.DataBytes);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["out"] = result.OutDir,
                ["models"] = result.Models.Select(m => Path.GetFileName(m.ModelPath)).ToList(),
                ["files"] = files,
                ["bytes"] = bytes,
                ["dtype"] = dtype,
                ["quantize"] = quantize == null ? null : new Dictionary<string, object?>
                {
                    ["bits"] = quantize.Format.Bits,
                    ["block_size"] = quantize.Format.BlockSize,
                    ["symmetric"] = quantize.Format.Symmetric,
                    ["accuracy_level"] = quantize.AccuracyLevel,
                    ["head_float"] = quantize.KeepHeadFloat,
                    ["head_bits"] = quantize.KeepHeadFloat ? null : quantize.HeadOrBodyFormat.Bits,
                    ["attention_bits"] = quantize.AttentionOrBodyFormat.Bits,
                },
                ["merged"] = adapterDir is not null && !noMerge,
                ["adapter"] = adapterDir,
                ["adapters"] = named?.Select(a => new Dictionary<string, string> { ["name"] = a.Name, ["dir"] = a.Dir }).ToList(),
                ["checked_with_ort"] = true,
                ["seconds"] = Math.Round(seconds, 3),
                ["cpu_seconds"] = Math.Round(phases.CpuSeconds, 3),
                ["peak_rss_bytes"] = peak,
                ["peak_rss_mb"] = Math.Round(peak / 1048576.0, 1),
                ["phases"] = phases.Figures,
            }));
        }
        else
        {
            Console.WriteLine($"exported {string.Join(" + ", result.Models.Select(m => Path.GetFileName(m.ModelPath)))} ({bytes / 1048576.0:F1} MB, {dtype}{(quantize == null ? "" : $" with int{quantize.Format.Bits} weights")}{(named != null ? $", {named.Count} named adapters" : adapterDir is null ? "" : noMerge ? ", adapter unmerged" : ", adapter merged")}) to {result.OutDir}, checked with ONNX Runtime");
        }
        Console.Error.WriteLine($"export: {seconds:F2} s ({phases.CpuSeconds:F2} s CPU), peak RSS {peak / 1048576.0:F1} MB; "
            + string.Join(", ", phases.Figures.Select(f => $"{f["phase"]} {f["seconds"]} s, peak {f["peak_rss_mb"]} MB")));
        return 0;
    }
}
