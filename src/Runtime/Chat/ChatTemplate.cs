using System.Globalization;
using System.Text;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>
/// A chat template (the Jinja subset Hugging Face chat templates use) compiled once and rendered per request with
/// messages, bos_token, eos_token, add_generation_prompt and the functions raise_exception, namespace, range and
/// strftime_now, as transformers' apply_chat_template renders it (trim_blocks, lstrip_blocks).
/// </summary>
public sealed class ChatTemplate
{
    private readonly Action<TemplateScope, StringBuilder> _render;

    private ChatTemplate(Action<TemplateScope, StringBuilder> render) => _render = render;

    /// <summary>Throws <see cref="TemplateException"/> when the text does not parse or uses an unsupported statement.</summary>
    public static ChatTemplate Parse(string text) => new(TemplateCompiler.Compile(text));

    public string Render(IReadOnlyList<ChatMessage> messages, string bosToken, string eosToken, bool addGenerationPrompt)
    {
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(m => (object?)new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
            ["bos_token"] = bosToken,
            ["eos_token"] = eosToken,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["raise_exception"] = (TemplateCallable)((a, _) => throw new TemplateException(a.Count > 0 ? TemplateValues.Text(a[0]) : "the template raised an exception")),
            ["namespace"] = (TemplateCallable)((a, kw) =>
            {
                var ns = new TemplateNamespace();
                foreach (var (k, v) in kw) ns[k] = v;
                return ns;
            }),
            ["range"] = (TemplateCallable)((a, _) =>
            {
                long start = a.Count > 1 ? (long)TemplateValues.Number(a[0]) : 0, stop = (long)TemplateValues.Number(a[a.Count > 1 ? 1 : 0]), step = a.Count > 2 ? (long)TemplateValues.Number(a[2]) : 1;
                var list = new List<object?>();
                for (long i = start; step > 0 ? i < stop : i > stop; i += step) list.Add(i);
                return list;
            }),
            ["strftime_now"] = (TemplateCallable)((a, _) => StrftimeNow(a.Count > 0 ? TemplateValues.Text(a[0]) : "")),
        };
        var output = new StringBuilder();
        _render(new TemplateScope(globals), output);
        return output.ToString();
    }

    /// <summary>The few strftime codes templates use for today's date (%d %b %B %Y %m %H %M).</summary>
    private static string StrftimeNow(string format)
    {
        var now = DateTime.Now;
        var s = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { s.Append(format[i]); continue; }
            char c = format[++i];
            s.Append(c switch
            {
                'd' => now.ToString("dd", CultureInfo.InvariantCulture),
                'b' => now.ToString("MMM", CultureInfo.InvariantCulture),
                'B' => now.ToString("MMMM", CultureInfo.InvariantCulture),
                'Y' => now.ToString("yyyy", CultureInfo.InvariantCulture),
                'm' => now.ToString("MM", CultureInfo.InvariantCulture),
                'H' => now.ToString("HH", CultureInfo.InvariantCulture),
                'M' => now.ToString("mm", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => "%" + c,
            });
        }
        return s.ToString();
    }
}
