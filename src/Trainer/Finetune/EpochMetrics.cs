using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Onnx.Core;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>One line of metrics.jsonl: what an epoch measured.</summary>
public sealed record EpochMetrics
{
    [JsonPropertyName("epoch")] public int Epoch { get; init; }
    [JsonPropertyName("train_loss")] public double TrainLoss { get; init; }
    [JsonPropertyName("train_ppl")] public double TrainPpl { get; init; }
    [JsonPropertyName("eval_loss")] public double EvalLoss { get; init; }
    [JsonPropertyName("eval_ppl")] public double EvalPpl { get; init; }
    [JsonPropertyName("eval_accuracy")] public double EvalAccuracy { get; init; }
    [JsonPropertyName("eval_correct")] public int EvalCorrect { get; init; }
    [JsonPropertyName("eval_rows")] public int EvalRows { get; init; }
    /// <summary>Generated answers per known label, plus "other" for anything else.</summary>
    [JsonPropertyName("predictions")] public Dictionary<string, int> Predictions { get; init; } = [];
    /// <summary>The most frequent answers outside the label set (up to 5).</summary>
    [JsonPropertyName("other_examples")] public Dictionary<string, int> OtherExamples { get; init; } = [];
    /// <summary>Validation rows whose label is not among the training labels.</summary>
    [JsonPropertyName("unknown_labels")] public int UnknownLabels { get; init; }
    /// <summary>Wall seconds of the epoch: training + evaluation.</summary>
    [JsonPropertyName("seconds")] public double Seconds { get; init; }
    [JsonPropertyName("train_seconds")] public double TrainSeconds { get; init; }
    [JsonPropertyName("eval_seconds")] public double EvalSeconds { get; init; }
    /// <summary>The learning rate of the epoch's last optimizer step.</summary>
    [JsonPropertyName("lr")] public double Lr { get; init; }
    [JsonPropertyName("optimizer_steps")] public long OptimizerSteps { get; init; }

    public static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static EpochMetrics FromJson(string line) =>
        JsonSerializer.Deserialize<EpochMetrics>(line, Json) ?? throw new PeftOnnxException("metrics: empty record");

    /// <summary>Writes metrics.jsonl (one record per line) atomically.</summary>
    public static void WriteAll(string path, IEnumerable<EpochMetrics> records) =>
        AtomicFile.WriteAllText(path, string.Concat(records.Select(r => r.ToJson() + "\n")));
}
