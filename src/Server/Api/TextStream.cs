namespace Peft.Onnx.Server.Api;

/// <summary>
/// The text of a row's new tokens as it grows: each push returns the part that is safe to send (held back while it
/// ends inside a multi-byte character or could be the start of a stop sequence); a stop sequence ends the text
/// before it.
/// </summary>
public sealed class TextStream(ServedModel model, IReadOnlyList<string> stops)
{
    private readonly List<int> _ids = [];
    private readonly int _holdBack = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;
    private string _text = "";
    private int _sent;

    /// <summary>True once a stop sequence appeared (the row should end).</summary>
    public bool Stopped { get; private set; }

    public IReadOnlyList<int> Ids => _ids;

    /// <summary>The final text (up to a stop sequence).</summary>
    public string Text => _text;

    public string Push(int token)
    {
        if (Stopped) return "";
        _ids.Add(token);
        var text = model.Decode(_ids);
        int cut = FirstStop(text);
        if (cut >= 0)
        {
            Stopped = true;
            _text = text[..cut];
            return Flush();
        }
        _text = text;
        if (text.EndsWith('\uFFFD') || text.Length <= _sent) return "";
        int safe = Math.Max(_sent, text.Length - _holdBack);
        var delta = text[_sent..safe];
        _sent = safe;
        return delta;
    }

    /// <summary>What is left to send at the end.</summary>
    public string Flush()
    {
        var delta = _text.Length > _sent ? _text[_sent..] : "";
        _sent = Math.Max(_sent, _text.Length);
        return delta;
    }

    private int FirstStop(string text)
    {
        int best = -1;
        foreach (var s in stops)
        {
            int at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best;
    }
}
