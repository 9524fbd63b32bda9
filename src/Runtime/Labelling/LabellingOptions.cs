using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Runtime.Labelling;

/// <summary>What `generate --data` was asked to do (already parsed; checked against the file by <see cref="LabelledTable"/>).</summary>
public sealed record LabellingOptions
{
    /// <summary>The .csv or .jsonl file whose rows get a label.</summary>
    public required string DataPath { get; init; }

    /// <summary>The column holding the text the template wraps.</summary>
    public required string TextColumn { get; init; }

    /// <summary>How a text becomes a prompt; null: train's default (causal "{text} Label : ", encoder-decoder the bare text).</summary>
    public PromptTemplate? Template { get; init; }

    /// <summary>The CSV to write.</summary>
    public required string OutPath { get; init; }

    /// <summary>Name of the output column holding the generated label.</summary>
    public string LabelColumn { get; init; } = "label";

    /// <summary>When set, the output holds only this column, the text column and the label (in that order).</summary>
    public string? IdColumn { get; init; }

    /// <summary>New tokens per row at most (null: the folder's generation_config.json, as `generate --prompt`).</summary>
    public int? MaxNewTokens { get; init; }

    /// <summary>Rows generated together.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>train's --max-length: the most prompt tokens (the start of a longer prompt is cut); null: no cut (causal).</summary>
    public int? MaxLength { get; init; }
}
