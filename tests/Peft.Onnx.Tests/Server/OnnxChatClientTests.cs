using Peft.Onnx.Tests.Support;
using Microsoft.Extensions.AI;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime.AI;
using Peft.Onnx.Tests.Runtime;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// The in-process IChatClient over a loaded model answers what the Runtime generates for the rendered template,
/// streamed or not, and the same as the server does through the OpenAI client (one abstraction, either side).
/// </summary>
public class OnnxChatClientTests(ServeFixture fixture) : IClassFixture<ServeFixture>
{
    [Fact]
    public async Task Response_and_stream_equal_the_runtime_and_the_server()
    {
        using IChatClient local = new OnnxChatClient(fixture.Reference);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 10 };
        var expected = fixture.ExpectedChat([new("system", "Answer in one word."), new("user", "What is the sky?")], 10);
        List<Microsoft.Extensions.AI.ChatMessage> messages = [new(ChatRole.System, "Answer in one word."), new(ChatRole.User, "What is the sky?")];

        var response = await local.GetResponseAsync(messages, options);
        Assert.Equal(expected, response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages[0].Role);
        Assert.True(response.Usage!.OutputTokenCount is > 0 and <= 10);
        Assert.NotNull(response.FinishReason);

        var streamed = new System.Text.StringBuilder();
        int updates = 0;
        await foreach (var update in local.GetStreamingResponseAsync(messages, options)) { streamed.Append(update.Text); updates++; }
        Assert.True(updates > 2);
        Assert.Equal(expected, streamed.ToString());

        IChatClient remote = new OpenAI.Chat.ChatClient(fixture.Name, new System.ClientModel.ApiKeyCredential("unused"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Address, "v1") }).AsIChatClient();
        Assert.Equal(response.Text, (await remote.GetResponseAsync(messages, options)).Text);
    }

    [Fact]
    public async Task Stop_sequence_ends_the_answer_before_it()
    {
        using IChatClient local = new OnnxChatClient(fixture.Reference);
        List<Microsoft.Extensions.AI.ChatMessage> messages = [new(ChatRole.System, "Answer in one word."), new(ChatRole.User, "What is the sky?")];
        var full = (await local.GetResponseAsync(messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 16 })).Text;
        Assert.True(full.Length >= 4, $"the reference '{full}' is too short to cut");
        var stop = full.Substring(full.Length / 2, 2);
        var cut = await local.GetResponseAsync(messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 16, StopSequences = [stop] });
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
    }

    [Fact]
    public async Task A_folder_without_a_template_says_what_is_missing()
    {
        using IChatClient local = new OnnxChatClient(ExportedModels.Model("tiny-gpt2-random"));
        var ex = await Assert.ThrowsAsync<PeftOnnxException>(() => local.GetResponseAsync("hi"));
        Assert.Contains("chat_template", ex.Message);
    }
}
