using System.Globalization;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Runtime.Labelling;

/// <summary>
/// A label for every row of a CSV/JSONL file, generated greedily in batches with ONNX Runtime from the prompts train
/// builds, written atomically as a CSV (the input's columns + the label, or id, text and label). What it does and
/// its progress go to the log, a line every few seconds.
/// </summary>
public static class FileLabelling
{
    public static LabellingReport Run(string onnxDir, DeviceOptions device, LabellingOptions options, TextWriter log)
    {
        // The file first: a bad column fails in a second, before the model is loaded.
        var table = LabelledTable.Read(options);

        using var model = OnnxModel.Load(onnxDir, device);
        var labeller = new DataLabeller(model, options.Template, options.MaxLength);
        log.WriteLine($"labelling {table.Count} rows of {options.DataPath} with {onnxDir} ({model.DeviceName}): prompt \"{labeller.Template?.Template ?? PromptTemplate.Placeholder}\", " +
            $"greedy, {(options.MaxNewTokens?.ToString(CultureInfo.InvariantCulture) ?? "generation_config's")} new tokens at most, batches of {options.BatchSize}");
        var progress = new LabellingProgress(log, TimeSpan.FromSeconds(5));
        var labels = labeller.Label(table.Texts, options.BatchSize, options.MaxNewTokens, progress.Report);
        AtomicFile.WriteAllText(options.OutPath, table.ToCsv(labels));
        var seconds = progress.Elapsed.TotalSeconds;

        var counts = labels.GroupBy(l => l, StringComparer.Ordinal).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        log.WriteLine($"wrote {options.OutPath}: {table.Count} rows in {seconds:F1} s ({table.Count / Math.Max(seconds, 1e-9):F1} rows/s); " +
            $"labels: {string.Join(", ", counts.Take(8).Select(kv => $"'{kv.Key}' {kv.Value}"))}{(counts.Count > 8 ? $" (and {counts.Count - 8} more distinct)" : "")}");
        return new LabellingReport(options.OutPath, table.Count, table.Header, counts, seconds, model.DeviceName);
    }
}
