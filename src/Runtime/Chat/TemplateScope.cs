namespace Peft.Onnx.Runtime.Chat;

/// <summary>Variables by scope: the render's globals, then one frame per loop (a set inside a loop stays in it).</summary>
internal sealed class TemplateScope
{
    private readonly List<Dictionary<string, object?>> _frames = [];

    public TemplateScope(Dictionary<string, object?> globals) => _frames.Add(globals);

    public object? Get(string name)
    {
        for (int i = _frames.Count - 1; i >= 0; i--)
            if (_frames[i].TryGetValue(name, out var v)) return v;
        return Undefined.Value;
    }

    public void Set(string name, object? value) => _frames[^1][name] = value;

    public void Push() => _frames.Add(new Dictionary<string, object?>(StringComparer.Ordinal));

    public void Pop() => _frames.RemoveAt(_frames.Count - 1);
}
