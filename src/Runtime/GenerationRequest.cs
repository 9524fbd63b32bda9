using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime;

/// <summary>
/// One generate call: a batch of prompts, as text (encoded with the folder's tokenizer, special tokens added as
/// transformers' tokenizer(text) does) or as token ids, of any lengths, and the options.
/// </summary>
public sealed record GenerationRequest
{
    /// <summary>Prompts as text (exclusive with <see cref="InputIds"/>).</summary>
    public IReadOnlyList<string>? Prompts { get; init; }

    /// <summary>Prompts as token ids, one row each, lengths may differ (exclusive with <see cref="Prompts"/>).</summary>
    public IReadOnlyList<IReadOnlyList<int>>? InputIds { get; init; }

    /// <summary>
    /// Optional 0/1 mask per row of <see cref="InputIds"/> (same lengths). Without it, as Hugging Face generate
    /// does when given input_ids alone: the pad token is masked out when it occurs in the ids and is not a stop
    /// token; every other id is attended to. Text prompts attend to every token.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<int>>? AttentionMask { get; init; }

    public GenerationOptions Options { get; init; } = new();

    /// <summary>
    /// The adapter of a multi-adapter export every row runs with (<see cref="OnnxModel.Adapters"/>); null = the base.
    /// <see cref="RowAdapters"/> picks one per row instead.
    /// </summary>
    public string? Adapter { get; init; }

    /// <summary>Per row the adapter (null = the base), one entry per prompt; overrides <see cref="Adapter"/>. One batch may mix them.</summary>
    public IReadOnlyList<string?>? Adapters { get; init; }

    /// <summary>The adapter of each of <paramref name="rows"/> rows.</summary>
    internal IReadOnlyList<string?> RowAdapters(int rows) => Adapters ?? Enumerable.Repeat(Adapter, rows).ToArray();

    public static GenerationRequest FromText(string prompt, GenerationOptions? options = null) => FromText([prompt], options);

    public static GenerationRequest FromText(IReadOnlyList<string> prompts, GenerationOptions? options = null) =>
        new() { Prompts = prompts, Options = options ?? new() };

    public static GenerationRequest FromIds(IReadOnlyList<int> prompt, GenerationOptions? options = null) =>
        new() { InputIds = [prompt], Options = options ?? new() };

    public static GenerationRequest FromIds(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions? options = null) =>
        new() { InputIds = prompts, Options = options ?? new() };

    internal void Validate()
    {
        if ((Prompts == null) == (InputIds == null)) throw new PeftOnnxException("a generation request needs either prompts (text) or input ids, not both");
        int count = Prompts?.Count ?? InputIds!.Count;
        if (count == 0) throw new PeftOnnxException("a generation request needs at least one prompt");
        if (Adapters != null && Adapters.Count != count) throw new PeftOnnxException($"a generation request names {Adapters.Count} adapters for {count} prompts (one per prompt, null for the base)");
        if (AttentionMask != null)
        {
            if (InputIds == null) throw new PeftOnnxException("an attention mask goes with input ids, not with text prompts");
            if (AttentionMask.Count != count) throw new PeftOnnxException($"attention mask has {AttentionMask.Count} rows, input ids {count}");
            for (int r = 0; r < count; r++)
            {
                if (AttentionMask[r].Count != InputIds[r].Count)
                    throw new PeftOnnxException($"attention mask row {r} has {AttentionMask[r].Count} values, input ids {InputIds[r].Count}");
                if (AttentionMask[r].Any(m => m is not (0 or 1))) throw new PeftOnnxException($"attention mask row {r} holds a value other than 0 or 1");
            }
        }
    }
}

/// <summary>What a request produced.</summary>
/// <param name="Sequences">
/// Token ids exactly as Hugging Face generate returns them: decoder-only, the (left-padded) prompt followed by the
/// new tokens; encoder-decoder, the decoder start token followed by the new tokens. Rows that stopped early are
/// filled with the pad token up to the longest row.
/// </param>
/// <param name="NewTokens">Per row the generated tokens up to and including its stop token (no padding).</param>
/// <param name="Text">Per row the decoded sequence, special tokens skipped (null when the folder has no tokenizer).</param>
/// <param name="NewText">Per row the decoded new tokens, special tokens skipped (null when the folder has no tokenizer).</param>
public sealed record GenerationResult(int[][] Sequences, int[][] NewTokens, string[]? Text, string[]? NewText, TimeSpan Elapsed, string Device)
{
    /// <summary>Generated tokens summed over rows (padding after a stop token not counted).</summary>
    public int NewTokenCount => NewTokens.Sum(r => r.Length);

    public double TokensPerSecond => Elapsed.TotalSeconds > 0 ? NewTokenCount / Elapsed.TotalSeconds : 0;
}

/// <summary>One token as it is generated: batch row, step (0-based) and id. Finished rows produce none.</summary>
public readonly record struct GeneratedToken(int Row, int Step, int TokenId);
