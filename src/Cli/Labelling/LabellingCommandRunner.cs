using System.Globalization;
using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Cli.Labelling;

/// <summary>
/// `generate --data`: a label for every row of a CSV/JSONL file, generated greedily in batches with ONNX Runtime from
/// the prompts train builds, written atomically as a CSV (the input's columns + the label, or id, text and label).
/// </summary>
public static class LabellingCommandRunner
{
    /// <summary>Options of `generate --prompt` that have no meaning here (data mode is greedy, prompts come from the file).</summary>
    private static readonly string[] PromptModeOptions = ["prompt", "input-ids", "temperature", "top-k", "top-p", "seed", "repetition-penalty"];

    public static int Run(ArgReader args, string onnxDir, string dataPath)
    {
        var textColumn = args.Required("text-column", "the column holding the text to label");
        var templateText = args.String("template");
        var outPath = args.Required("out", "the CSV to write");
        var labelColumn = args.String("label-column") ?? "label";
        var idColumn = args.String("id-column");
        // The PEFT guides label with generate(..., max_new_tokens=10); transformers' own default (max_length 20 with the
        // prompt counted) would leave a templated prompt one token.
        var maxNewTokens = args.Int("max-new-tokens", min: 1) ?? 10;
        var batchSize = args.Int("batch-size", min: 1) ?? 32;
        var maxLength = args.Int("max-length", min: 1);
        var device = DeviceArgument.Read(args);
        var json = args.Flag("json");
        args.Flag("greedy"); // what data mode does anyway
        var given = PromptModeOptions.Where(o => args.String(o) is not null).ToList();
        args.EnsureAllUsed();
        if (given.Count > 0)
            throw new PeftOnnxException($"generate: --data labels every row greedily; --{given[0]} belongs to --prompt / --input-ids mode");

        var options = new LabellingOptions
        {
            DataPath = dataPath,
            TextColumn = textColumn,
            Template = templateText is null ? null : PromptTemplate.Parse(templateText),
            OutPath = outPath,
            LabelColumn = labelColumn,
            IdColumn = idColumn,
            MaxNewTokens = maxNewTokens,
            BatchSize = batchSize,
            MaxLength = maxLength,
        };
        CheckOut(outPath);
        // The file first: a bad column fails in a second, before the model is loaded.
        var table = LabelledTable.Read(options);

        using var model = OnnxModel.Load(onnxDir, device);
        var labeller = new DataLabeller(model, options.Template, options.MaxLength);
        Console.Error.WriteLine($"labelling {table.Count} rows of {dataPath} with {onnxDir} ({model.DeviceName}): prompt \"{labeller.Template?.Template ?? PromptTemplate.Placeholder}\", " +
            $"greedy, {(options.MaxNewTokens?.ToString(CultureInfo.InvariantCulture) ?? "generation_config's")} new tokens at most, batches of {options.BatchSize}");
        var progress = new LabellingProgress(Console.Error, TimeSpan.FromSeconds(5));
        var labels = labeller.Label(table.Texts, options.BatchSize, options.MaxNewTokens, progress.Report);
        AtomicFile.WriteAllText(outPath, table.ToCsv(labels));
        var seconds = progress.Elapsed.TotalSeconds;

        var counts = labels.GroupBy(l => l, StringComparer.Ordinal).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        Console.Error.WriteLine($"wrote {outPath}: {table.Count} rows in {seconds:F1} s ({table.Count / Math.Max(seconds, 1e-9):F1} rows/s); " +
            $"labels: {string.Join(", ", counts.Take(8).Select(kv => $"'{kv.Key}' {kv.Value}"))}{(counts.Count > 8 ? $" (and {counts.Count - 8} more distinct)" : "")}");
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["out"] = outPath,
                ["rows"] = table.Count,
                ["columns"] = table.Header,
                ["label_counts"] = counts,
                ["seconds"] = Math.Round(seconds, 3),
                ["device"] = model.DeviceName,
            }));
        }
        return 0;
    }

    private static void CheckOut(string outPath)
    {
        if (!outPath.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
            throw new PeftOnnxException($"generate: --out {outPath}: expected a .csv file (the labelled rows are written as CSV)");
        var folder = Path.GetDirectoryName(Path.GetFullPath(outPath))!;
        if (!Directory.Exists(folder)) throw new PeftOnnxException($"generate: --out {outPath}: folder {folder} not found");
        if (Directory.Exists(outPath)) throw new PeftOnnxException($"generate: --out {outPath} is a folder (expected a .csv file)");
    }
}
