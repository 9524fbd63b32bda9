namespace Peft.Onnx.Trainer.Finetune;

/// <summary>
/// What `train --data` is asked: the model, the data and its columns, the adapter (a method with its options, or a
/// saved config), the training options and the out folder. Checked by <see cref="FinetuneJob"/> before any weights are read.
/// </summary>
public sealed record FinetuneRequest
{
    public required string BaseDir { get; init; }
    public required string DataPath { get; init; }

    /// <summary>A file with the same columns; or else <see cref="ValidationSplit"/> of the data, shuffled with the seed.</summary>
    public string? ValidationPath { get; init; }
    public double? ValidationSplit { get; init; }

    public required string TextColumn { get; init; }
    public required string LabelColumn { get; init; }

    /// <summary>The prompt around {text}; null: <see cref="Core.Data.ExampleBuilder.DefaultCausalTemplate"/> (causal), the bare text (seq2seq).</summary>
    public string? Template { get; init; }

    /// <summary>One of <see cref="FinetuneSetup.Methods"/>, built from <see cref="MethodOptions"/>; or else <see cref="ConfigPath"/>.</summary>
    public string? Method { get; init; }
    public string? ConfigPath { get; init; }
    public MethodOptions MethodOptions { get; init; } = new();

    /// <summary>The guides train with adamw; any other name is refused.</summary>
    public string OptimizerName { get; init; } = "adamw";

    public required FinetuneOptions Options { get; init; }
    public int? MaxLength { get; init; }
    public int? TargetMaxLength { get; init; }
    public required string OutDir { get; init; }

    /// <summary>Continue from the last checkpoint in the out folder.</summary>
    public bool Resume { get; init; }

    /// <summary>cpu, cuda or auto.</summary>
    public string Device { get; init; } = "auto";
}
