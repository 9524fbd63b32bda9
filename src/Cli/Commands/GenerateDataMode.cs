using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Runtime.Labelling;

namespace Peft.Onnx.Cli.Commands;

/// <summary>`generate --data`: the options of labelling a file, handed to <see cref="FileLabelling"/>.</summary>
public static class GenerateDataMode
{
    /// <summary>Options of `generate --prompt` that have no meaning here (data mode is greedy, prompts come from the file).</summary>
    private static readonly string[] PromptModeOptions = ["prompt", "input-ids", "temperature", "top-k", "top-p", "seed", "repetition-penalty"];

    public static int Run(ArgReader args, string onnxDir, string dataPath)
    {
        var textColumn = args.Required("text-column", "the column holding the text to label");
        var templateText = args.String("template");
        var outPath = args.Required("out", "the CSV to write");
        var labelColumn = args.String("label-column")!;
        var idColumn = args.String("id-column");
        // The PEFT guides label with generate(..., max_new_tokens=10); transformers' own default (max_length 20 with the
        // prompt counted) would leave a templated prompt one token.
        var maxNewTokens = args.Int("max-new-tokens", min: 1) ?? 10;
        var batchSize = args.Int("batch-size", min: 1)!.Value;
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
        var report = FileLabelling.Run(onnxDir, device, options, Console.Error);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["out"] = report.OutPath,
                ["rows"] = report.Rows,
                ["columns"] = report.Columns,
                ["label_counts"] = report.LabelCounts,
                ["seconds"] = Math.Round(report.Seconds, 3),
                ["device"] = report.Device,
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
