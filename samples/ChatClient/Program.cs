using Microsoft.Extensions.AI;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.AI;

// chat-client DIR [QUESTION]: one answer streamed from the exported folder DIR (its tokenizer_config.json needs a
// chat_template). The same code runs against `peft-onnx serve` by swapping the IChatClient for
// new OpenAI.Chat.ChatClient(name, key, new() { Endpoint = new("http://127.0.0.1:8000/v1") }).AsIChatClient().
if (args.Length is < 1 or > 2)
{
    Console.Error.WriteLine("usage: chat-client DIR [QUESTION]");
    return 2;
}
using var model = OnnxModel.Load(args[0], DeviceOptions.Auto);
using IChatClient chat = new OnnxChatClient(model);
List<ChatMessage> history =
[
    new(ChatRole.System, "You are a concise assistant."),
    new(ChatRole.User, args.Length > 1 ? args[1] : "What is LoRA?"),
];
var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 64 };
await foreach (var update in chat.GetStreamingResponseAsync(history, options))
    Console.Write(update.Text);
Console.WriteLine();
return 0;
