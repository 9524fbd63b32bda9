using System.ClientModel;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// The official OpenAI .NET client and Microsoft.Extensions.AI's IChatClient over it talk to the test server: chat,
/// streaming included, answers equal to the Runtime generating the template-rendered prompt alone.
/// </summary>
public class ServeOpenAiClientTests(ServeFixture fixture) : IClassFixture<ServeFixture>
{
    private ChatClient Client() =>
        new(fixture.Name, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Address, "v1") });

    private string Expected(IReadOnlyList<Peft.Onnx.Runtime.Chat.ChatMessage> messages, int maxTokens) => fixture.ExpectedChat(messages, maxTokens);

    [Fact]
    public async Task OpenAI_chat_client_gets_the_exact_answer()
    {
        var expected = Expected([new("system", "Be brief."), new("user", "Name a colour.")], 9);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 9 };
        ChatCompletion completion = await Client().CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Name a colour.")], options);
        Assert.Equal(expected, completion.Content[0].Text);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.True(completion.Usage.OutputTokenCount is > 0 and <= 9);
    }

    [Fact]
    public async Task OpenAI_chat_client_streams_the_same_answer()
    {
        var expected = Expected([new("user", "Tell me a story.")], 12);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 };
        var text = new System.Text.StringBuilder();
        int updates = 0;
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("Tell me a story.")], options))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            updates++;
        }
        Assert.True(updates > 2);
        Assert.Equal(expected, text.ToString());
    }

    [Fact]
    public async Task Extensions_AI_chat_client_over_OpenAI_gets_the_exact_answer_and_stream()
    {
        IChatClient chat = Client().AsIChatClient();
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 8 };
        var expected = Expected([new("user", "Hello there")], 8);
        var response = await chat.GetResponseAsync("Hello there", options);
        Assert.Equal(expected, response.Text);
        var streamed = new System.Text.StringBuilder();
        await foreach (var update in chat.GetStreamingResponseAsync("Hello there", options)) streamed.Append(update.Text);
        Assert.Equal(expected, streamed.ToString());
    }
}
