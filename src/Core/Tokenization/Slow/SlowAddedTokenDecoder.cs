namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// PreTrainedTokenizer._decode (transformers 4.33): tokens added on top of the model's vocabulary are written as
/// their text, the runs between them are decoded by the model, and the parts are joined with single spaces
/// (spaces_between_special_tokens=True).
/// </summary>
internal sealed class SlowAddedTokenDecoder(ITokenDecoder model, IReadOnlyDictionary<int, string> addedContent) : ITokenDecoder
{
    public string Decode(IReadOnlyList<int> ids)
    {
        var parts = new List<string>();
        var run = new List<int>();
        foreach (int id in ids)
        {
            if (addedContent.TryGetValue(id, out var content))
            {
                if (run.Count > 0) parts.Add(model.Decode(run));
                run = [];
                parts.Add(content);
            }
            else run.Add(id);
        }
        if (run.Count > 0) parts.Add(model.Decode(run));
        return string.Join(" ", parts);
    }
}
