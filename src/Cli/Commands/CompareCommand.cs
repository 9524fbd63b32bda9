using System.Text.Json;
using Peft.Onnx.Verification;
using Peft.Onnx.Core;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `compare`: the adapted model (TorchSharp, unmerged) against its compiled ONNX folder on the same inputs: max and
/// mean absolute logit difference on real tokens, top-1 agreement, exact agreement of greedy generations and, with a
/// labelled data set, each side's accuracy, and the KL divergence and each side's perplexity on the labels. Exit 1 when the
/// max difference is beyond --tolerance (a quantized export: only when --tolerance is given).
/// </summary>
public sealed class CompareCommand : ICommand
{
    public string Name => "compare";
    public string Summary => "adapted model (TorchSharp) vs its ONNX export: logit diffs, top-1 and greedy agreement";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        SharedOptions.Base(),
        SharedOptions.Adapter(),
        VerbOption.Value("onnx", "DIR", "the folder written by peft-onnx export from --base and --adapter"),
        VerbOption.Value("inputs", "F.safetensors", "compare on this batch (input_ids, attention_mask [, labels])"),
        VerbOption.Value("data", "FILE", "or on the rows of this labelled CSV/JSONL file (prompts as train builds them)"),
        VerbOption.Value("limit", "N", "the first N rows only"),
        VerbOption.Value("text-column", "C", "--data: the column holding the text"),
        VerbOption.Value("label-column", "C", "--data: the column holding the label (adds each side's accuracy)"),
        VerbOption.Value("template", "TEXT", "--data: the prompt around {text}, as train --template"),
        VerbOption.Value("tolerance", "X", "the largest max |logit difference| that passes (default: 1e-4 x the adapted logits' std, at least 1e-4)"),
        VerbOption.Value("max-new-tokens", "N", "new tokens of each greedy generation", "10"),
        VerbOption.Value("plot", "F.png", "draw a histogram of the logit differences"),
        SharedOptions.Device,
        SharedOptions.Json,
    ];

    public int Run(ArgReader args)
    {
        var baseDir = args.ExistingDir("base", "the Hugging Face model folder");
        var adapterDir = args.ExistingDir("adapter", "the PEFT adapter folder");
        var onnxDir = args.ExistingDir("onnx", "the folder written by peft-onnx export");
        var inputs = args.String("inputs");
        var data = args.String("data");
        var limit = args.Int("limit", min: 1);
        var textColumn = args.String("text-column");
        var labelColumn = args.String("label-column");
        var template = args.String("template");
        var tolerance = args.Double("tolerance");
        var maxNew = args.Int("max-new-tokens", min: 0)!.Value;
        var json = args.Flag("json");
        var plot = args.String("plot");
        var device = DeviceArgument.Choice(args);
        args.EnsureAllUsed();
        if ((inputs == null) == (data == null)) throw new PeftOnnxException("compare: give exactly one of --inputs F.safetensors or --data FILE");
        if (inputs != null && !File.Exists(inputs)) throw new PeftOnnxException($"compare: --inputs {inputs}: file not found");
        if (data != null && !File.Exists(data)) throw new PeftOnnxException($"compare: --data {data}: file not found");
        if (inputs != null && (textColumn ?? labelColumn ?? template) != null) throw new PeftOnnxException("compare: --text-column, --label-column and --template go with --data");
        if (tolerance is < 0) throw new PeftOnnxException($"compare: --tolerance {tolerance} must be >= 0");

        var report = CompareRunner.Run(new CompareRequest(baseDir, adapterDir, onnxDir, inputs, data, limit, textColumn, labelColumn, template,
            tolerance, maxNew, device), Console.Error);
        if (plot != null) DiffHistogram.Write(plot, report.Differences, report.Tolerance, $"{report.PeftType}: adapted vs ONNX logits ({report.Positions} positions)");

        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["peft_type"] = report.PeftType,
                ["source"] = report.Source,
                ["rows"] = report.Rows,
                ["positions"] = report.Positions,
                ["max_abs_diff"] = report.MaxAbsDiff,
                ["mean_abs_diff"] = report.MeanAbsDiff,
                ["adapted_logit_std"] = report.AdaptedLogitStd,
                ["tolerance"] = report.Tolerance,
                ["passed"] = report.Passed,
                ["top1_agreement"] = report.Top1Agreement,
                ["kl_divergence"] = report.Distribution?.KlDivergence,
                ["torch_perplexity"] = report.Distribution?.AdaptedPerplexity,
                ["onnx_perplexity"] = report.Distribution?.ExportPerplexity,
                ["quantized"] = report.Quantized,
                ["tolerance_applied"] = report.ToleranceApplies,
                ["generations"] = report.Generations,
                ["generations_equal"] = report.GenerationsEqual,
                ["generation_agreement"] = report.GenerationAgreement,
                ["max_new_tokens"] = report.MaxNewTokens,
                ["torch_accuracy"] = report.TorchAccuracy,
                ["onnx_accuracy"] = report.OnnxAccuracy,
                ["torch_samples"] = report.TorchSamples,
                ["onnx_samples"] = report.OnnxSamples,
                ["torch_forward_seconds"] = Math.Round(report.TorchSeconds, 4),
                ["onnx_forward_seconds"] = Math.Round(report.OnnxSeconds, 4),
                ["plot"] = plot,
            }));
        }
        else
        {
            Console.WriteLine($"compare {report.PeftType}: {report.Rows} rows, {report.Positions} real positions");
            Console.WriteLine($"  max |diff|        {report.MaxAbsDiff:E3}   (tolerance {report.Tolerance:E3}: {(report.Passed ? "ok" : "BEYOND")})");
            Console.WriteLine($"  mean |diff|       {report.MeanAbsDiff:E3}");
            Console.WriteLine($"  top-1 agreement   {report.Top1Agreement:P2}");
            if (report.Distribution is { } d)
            {
                Console.WriteLine($"  KL divergence     {d.KlDivergence:E3}");
                if (d.AdaptedPerplexity is { } tp) Console.WriteLine($"  perplexity        torch {tp:F4}, onnx {d.ExportPerplexity:F4}");
            }
            if (report.Quantized && !report.ToleranceApplies) Console.WriteLine("  quantized export: no pass/fail without --tolerance");
            Console.WriteLine($"  greedy agreement  {report.GenerationsEqual}/{report.Generations} ({report.MaxNewTokens} new tokens)");
            if (report.TorchAccuracy is { } ta) Console.WriteLine($"  accuracy          torch {ta:P1}, onnx {report.OnnxAccuracy:P1}");
            if (plot != null) Console.WriteLine($"  histogram         {plot}");
        }
        if (!report.Passed) Console.Error.WriteLine($"compare: max logit difference {report.MaxAbsDiff:E3} is beyond the tolerance {report.Tolerance:E3}");
        return report.Passed ? 0 : 1;
    }
}
