using System.Text.Json;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>
/// The chat template of an export folder's tokenizer_config.json ("chat_template": a string, or a list of named
/// templates of which "default" is used) with its bos_token and eos_token; <see cref="Missing"/> says why there is none.
/// </summary>
public sealed class ChatTemplateSource
{
    private ChatTemplateSource(ChatTemplate? template, string? missing, string bos, string eos)
    {
        Template = template;
        Missing = missing;
        BosToken = bos;
        EosToken = eos;
    }

    public ChatTemplate? Template { get; }
    public string? Missing { get; }
    public string BosToken { get; }
    public string EosToken { get; }

    public static ChatTemplateSource Load(string dir)
    {
        var path = Path.Combine(dir, "tokenizer_config.json");
        if (!File.Exists(path)) return new(null, $"{path} not found", "", "");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        string bos = TokenText(root, "bos_token"), eos = TokenText(root, "eos_token");
        if (!root.TryGetProperty("chat_template", out var t) || t.ValueKind == JsonValueKind.Null)
            return new(null, $"{path} has no 'chat_template'", bos, eos);
        string? text = t.ValueKind == JsonValueKind.String ? t.GetString()
            : t.ValueKind == JsonValueKind.Array
                ? t.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("name", out var n) && n.GetString() == "default")
                    .Select(e => e.GetProperty("template").GetString()).FirstOrDefault()
                : null;
        if (text == null) return new(null, $"{path}: 'chat_template' is neither a string nor a list with a \"default\" template", bos, eos);
        try
        {
            return new(ChatTemplate.Parse(text), null, bos, eos);
        }
        catch (TemplateException ex)
        {
            return new(null, $"{path}: the chat template uses what this server does not render: {ex.Message}", bos, eos);
        }
    }

    /// <summary>A special token as tokenizer_config.json writes it: a string or {"content": ...}.</summary>
    private static string TokenText(JsonElement root, string name) =>
        !root.TryGetProperty(name, out var v) ? ""
        : v.ValueKind == JsonValueKind.String ? v.GetString()!
        : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()!
        : "";
}
