namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// The special ids wrapped around an encoded text when <c>addSpecialTokens</c> is true: a slow tokenizer's
/// build_inputs_with_special_tokens or a tokenizer.json post_processor.
/// </summary>
/// <param name="Prefix">Ids put before the text (e.g. bos).</param>
/// <param name="Suffix">Ids put after the text (e.g. eos).</param>
/// <param name="SuffixOnlyIfAbsent">_add_eos_if_not_present: no suffix when the ids already end with it.</param>
internal sealed record SpecialTokenTemplate(IReadOnlyList<int> Prefix, IReadOnlyList<int> Suffix, bool SuffixOnlyIfAbsent = false)
{
    public static readonly SpecialTokenTemplate None = new([], []);

    public void Apply(List<int> ids)
    {
        bool endsWithSuffix = Suffix.Count > 0 && ids.Count >= Suffix.Count &&
                              ids.Skip(ids.Count - Suffix.Count).SequenceEqual(Suffix);
        if (!(SuffixOnlyIfAbsent && endsWithSuffix)) ids.AddRange(Suffix);
        ids.InsertRange(0, Prefix);
    }
}
