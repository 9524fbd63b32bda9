using System.Text.Json;
using Peft.Onnx.Bench;
using Peft.Onnx.Core;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `bench`: end-to-end figures in one run (JSON with --json, else a short table): generation tokens/s, TTFT and peak
/// RSS of the base graph and each adapter export, the memory-bandwidth limit, ORT GenAI on the same folders, export
/// vs copy, and trainer step times vs the base model's forward + backward. Small defaults; --quick for a smoke run.
/// </summary>
public sealed class BenchCommand : ICommand
{
    public string Name => "bench";
    public string Summary => "generation, GenAI baseline, export and trainer figures in one run (JSON + table)";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        SharedOptions.Base("the model to generate with (default: models/tiny-bloom-fin above the current folder)"),
        VerbOption.Flag("quick", "a smoke run: small sizes, 3 rounds, no GenAI build"),
        VerbOption.Value("prompt-length", "N", "prompt tokens (default 64; 8 with --quick)"),
        VerbOption.Value("new-tokens", "N", "new tokens per generation (default 64; 4 with --quick)"),
        VerbOption.Value("batch-sizes", "1,8", "batch sizes to time (default 1,8; 1,2 with --quick)"),
        VerbOption.Value("repeats", "N", "timing rounds: every variant generates once per round (default 20; 3 with --quick)"),
        VerbOption.Flag("export-560m", "also export a bloomz-560m-sized random checkpoint (fp32, merged LoRA, fp16)"),
        VerbOption.Flag("no-genai", "skip the ONNX Runtime GenAI baseline"),
        VerbOption.Value("skip", "generation,genai,export,trainer", "parts to leave out"),
        VerbOption.Value("train-batch", "N", "trainer step batch size (default 8; 2 with --quick)"),
        VerbOption.Value("train-seq", "N", "trainer step sequence length (default 64; 16 with --quick)"),
        VerbOption.Value("train-steps", "N", "trainer steps per method (default 8; 1 with --quick)"),
        VerbOption.Value("bandwidth-mb", "MB", "the array the memory-bandwidth probe reads (default 256; 16 with --quick)"),
        VerbOption.Value("decode-models", "gpt2-124m,bloomz-560m", "add batch-1 fp32 decode of these random-weight models against the bandwidth limit"),
        VerbOption.Value("quantize", "int8,int4", "export a bloomz-560m-sized random checkpoint fp32 and at these widths; decode each (ours and GenAI) against fp32 and its bandwidth limit"),
        VerbOption.Flag("multi-adapter", "8 LoRA adapters in one multi-adapter export vs the base, merged exports and GenAI's Adapters API; memory of 1, 8, 32 adapters"),
        SharedOptions.Json,
        SharedOptions.Device,
    ];

    public int Run(ArgReader args)
    {
        var quick = args.Flag("quick");
        var baseDir = args.String("base") ?? BenchRunner.FindUp(Path.Combine("models", "tiny-bloom-fin"))
            ?? throw new PeftOnnxException("bench: models/tiny-bloom-fin not found above the current folder; give --base DIR");
        if (!Directory.Exists(baseDir)) throw new PeftOnnxException($"bench: --base {baseDir}: folder not found");
        var promptLength = args.Int("prompt-length", min: 1) ?? (quick ? 8 : 64);
        var newTokens = args.Int("new-tokens", min: 1) ?? (quick ? 4 : 64);
        var batchText = args.String("batch-sizes");
        var repeats = args.Int("repeats", min: 1) ?? (quick ? 3 : 20); // rounds: every variant generates once per round; medians and paired ratios need several
        var export560m = args.Flag("export-560m");
        var noGenAi = args.Flag("no-genai");
        var skip = BenchArguments.List(args.String("skip"));
        var trainBatch = args.Int("train-batch", min: 1) ?? (quick ? 2 : 8);
        var trainSeq = args.Int("train-seq", min: 2) ?? (quick ? 16 : 64);
        var trainSteps = args.Int("train-steps", min: 1) ?? (quick ? 1 : 8);
        var bandwidthMb = args.Int("bandwidth-mb", min: 1) ?? (quick ? 16 : 256);
        var decodeModels = BenchArguments.List(args.String("decode-models"));
        var quantize = BenchArguments.List(args.String("quantize"));
        var multiAdapter = args.Flag("multi-adapter");
        var json = args.Flag("json");
        var device = DeviceArgument.Choice(args);
        args.EnsureAllUsed();
        if (device == "cuda") throw new PeftOnnxException("bench: measures the CPU path here (ONNX Runtime CPU provider, TorchSharp CPU); use --device cpu or auto");
        if (device == "auto") Console.Error.WriteLine("device: cpu (bench measures the CPU path)");
        BenchArguments.Check(skip, decodeModels, quantize);
        var batches = BenchArguments.BatchSizes(batchText, quick);

        Peft.Onnx.Trainer.TorchDevice.Resolve("cpu", _ => { });
        var settings = new BenchSettings(baseDir, promptLength, newTokens, batches, repeats, quick,
            Generation: !skip.Contains("generation"), GenAi: !noGenAi && !skip.Contains("genai"), Export: !skip.Contains("export"), Trainer: !skip.Contains("trainer"),
            export560m, trainBatch, trainSeq, trainSteps, bandwidthMb * 1048576L, decodeModels) { Quantize = quantize, MultiAdapter = multiAdapter };
        var result = BenchRunner.Run(settings, Console.Error);
        if (json) Console.WriteLine(JsonSerializer.Serialize(result));
        else BenchRunner.PrintTable(result, Console.Out);
        return 0;
    }
}
