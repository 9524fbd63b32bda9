using System.Text.Json;
using Peft.Onnx.Runtime.Chat;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// The published chat templates of Llama 3, Qwen2, Mistral, Phi-3 and Gemma (and one written here that uses the rest
/// of the subset) render exactly what Python's jinja2 renders with transformers' settings (tests/fixtures/chat-templates,
/// expected texts written by jinja2 3.1), raise_exception included.
/// </summary>
public class ChatTemplateTests
{
    public static TheoryData<string> Templates() => new() { "llama3", "qwen2", "mistral", "phi3", "gemma", "features" };

    [Theory]
    [MemberData(nameof(Templates))]
    public void Renders_like_jinja2(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Paths.Fixtures, "chat-templates", name + ".json")));
        var root = doc.RootElement;
        var template = ChatTemplate.Parse(root.GetProperty("chat_template").GetString()!);
        string bos = root.GetProperty("bos_token").GetString()!, eos = root.GetProperty("eos_token").GetString()!;
        int checkedCases = 0;
        foreach (var c in root.GetProperty("cases").EnumerateArray())
        {
            var messages = c.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();
            bool prompt = c.GetProperty("add_generation_prompt").GetBoolean();
            if (c.TryGetProperty("raises", out var raises))
            {
                var ex = Assert.Throws<TemplateException>(() => template.Render(messages, bos, eos, prompt));
                Assert.Equal(raises.GetString(), ex.Message);
            }
            else Assert.Equal(c.GetProperty("expected").GetString(), template.Render(messages, bos, eos, prompt));
            checkedCases++;
        }
        Assert.True(checkedCases >= 2);
    }

    [Theory]
    [InlineData("{% macro m() %}x{% endmacro %}", "macro")]
    [InlineData("{{ messages | wordcount }}", "wordcount")]
    [InlineData("{% if true %}open", "never closed")]
    public void Unsupported_or_broken_templates_name_the_problem(string text, string expected)
    {
        var ex = Assert.ThrowsAny<TemplateException>(() => ChatTemplate.Parse(text).Render([new ChatMessage("user", "hi")], "", "", true));
        Assert.Contains(expected, ex.Message);
    }
}
