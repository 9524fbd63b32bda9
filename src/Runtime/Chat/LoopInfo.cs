namespace Peft.Onnx.Runtime.Chat;

/// <summary>The loop variable of a for: index, index0, revindex, revindex0, first, last, length, previtem, nextitem.</summary>
internal sealed class LoopInfo(IReadOnlyList<object?> items)
{
    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : Undefined.Value,
        "nextitem" => Index0 < items.Count - 1 ? items[Index0 + 1] : Undefined.Value,
        _ => Undefined.Value,
    };
}
