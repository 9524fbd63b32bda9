using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Graphs;

/// <summary>
/// The encoder soft prompts (prompt tuning, p-tuning on encoder-decoder models; see
/// <see cref="Seq2SeqGraphOptions.EncoderPrompt"/>) of several adapters, chosen per row by
/// <see cref="Seq2SeqContract.AdapterIndex"/>: every row's encoder input is [padding, its prompt, input] with the
/// padding masked, MaxLength positions in front of the input for every row (adapters without a prompt and the base, the
/// last slot, are all padding). The padding goes in front so that every distance between a virtual token and a real one
/// is the single-adapter graph's (T5's relative position bias depends on it); masked keys get exactly zero weight.
/// Initializer <c>prompt.stacked.embeddings</c> [n + 1, MaxLength, d_model]; the decoder prepends the same per-row mask to
/// encoder_attention_mask.
/// </summary>
public sealed class EncoderPromptStack
{
    private readonly float[]?[] _slots;
    private readonly int[] _lengths;

    /// <param name="prompts">Per adapter, in index order, its prompt [length, dModel] (row-major) or null.</param>
    public EncoderPromptStack(IReadOnlyList<float[]?> prompts, int dModel)
    {
        if (dModel <= 0) throw new ArgumentException($"d_model {dModel}");
        _slots = [.. prompts];
        _lengths = _slots.Select(p => p == null ? 0 : p.Length / dModel).ToArray();
        for (int k = 0; k < _slots.Length; k++)
            if (_slots[k] is { } p && (p.Length == 0 || p.Length % dModel != 0)) throw new ArgumentException($"prompt of {p.Length} values is not [length, {dModel}]");
        if (_lengths.All(l => l == 0)) throw new ArgumentException("an encoder prompt stack needs at least one adapter with a prompt");
        DModel = dModel;
        MaxLength = _lengths.Max();
    }

    public int Count => _slots.Length;
    public int DModel { get; }

    /// <summary>The longest prompt: the positions every row gets in front of its encoder input.</summary>
    public int MaxLength { get; }

    public const string EmbeddingsName = "prompt.stacked.embeddings";

    /// <summary>Each row's [MaxLength, d_model] block in front of <paramref name="embeds"/> [batch, seq, d_model].</summary>
    internal string Prepend(GraphBuilder g, string embeds, string inputIds)
    {
        int n = Count + 1;
        var stacked = new float[(long)n * MaxLength * DModel];
        for (int k = 0; k < Count; k++)
            if (_slots[k] is { } p) p.CopyTo(stacked, ((long)k * MaxLength + MaxLength - _lengths[k]) * DModel);
        var table = g.Initializer(EmbeddingsName, InitializerData.FromFloats(stacked, n, MaxLength, DModel));
        var shape = g.Concat(0, [g.Shape(inputIds, 0, 1), g.Ints(MaxLength, DModel)]);
        return g.Concat(1, [g.Op("Expand", [g.Gather(table, Seq2SeqContract.AdapterIndex), shape]), embeds]);
    }

    /// <summary>Each row's prompt mask [batch, MaxLength] (int64, 1 on its prompt) in front of <paramref name="mask"/>.</summary>
    internal string ExtendMask(GraphBuilder g, string mask)
    {
        using var _ = g.Scope("prompt_mask");
        var stacked = new long[(Count + 1) * MaxLength];
        for (int k = 0; k < Count; k++) Array.Fill(stacked, 1L, (k + 1) * MaxLength - _lengths[k], _lengths[k]);
        var rows = g.Gather(g.Constant(InitializerData.FromInt64(stacked, Count + 1, MaxLength)), Seq2SeqContract.AdapterIndex);
        var shape = g.Concat(0, [g.Shape(mask, 0, 1), g.Ints(MaxLength)]);
        return g.Concat(1, [g.Op("Expand", [rows, shape]), mask]);
    }
}
