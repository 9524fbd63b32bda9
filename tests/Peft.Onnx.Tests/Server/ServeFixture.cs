using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Server;
using Peft.Onnx.Tests.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>
/// One server on 127.0.0.1, port 0, over a copy of the tiny Llama export whose tokenizer_config.json carries Qwen2's
/// published chat template; the reference answers come from the Runtime on the same files, loaded separately.
/// </summary>
public sealed class ServeFixture : IAsyncLifetime
{
    public const string ModelName = "tiny-llama-chat";

    public string Folder { get; private set; } = "";
    public RunningServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public OnnxModel Reference { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var copy = ExportedModels.Copy("tiny-llama-random");
        Folder = Path.Combine(Path.GetDirectoryName(copy)!, ModelName + "-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.Move(copy, Folder);
        var configPath = Path.Combine(Folder, "tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        using var qwen = JsonDocument.Parse(File.ReadAllText(Path.Combine(Paths.Fixtures, "chat-templates", "qwen2.json")));
        config["chat_template"] = qwen.RootElement.GetProperty("chat_template").GetString();
        File.WriteAllText(configPath, config.ToJsonString());
        Server = await Start(new ServeOptions(Folder, DeviceOptions.Cpu, Port: 0, MaxBatchSize: 4));
        Http = new HttpClient { BaseAddress = Server.Address, Timeout = TimeSpan.FromMinutes(2) };
        Reference = OnnxModel.Load(Folder, DeviceOptions.Cpu);
    }

    public string Name => Path.GetFileName(Folder);

    /// <summary>The chat answer the Runtime gives alone: the Qwen2 template rendered, tokenized without special tokens, greedy.</summary>
    public string ExpectedChat(IReadOnlyList<Peft.Onnx.Runtime.Chat.ChatMessage> messages, int maxTokens)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Paths.Fixtures, "chat-templates", "qwen2.json")));
        var prompt = Peft.Onnx.Runtime.Chat.ChatTemplate.Parse(doc.RootElement.GetProperty("chat_template").GetString()!).Render(messages, "", "", addGenerationPrompt: true);
        var ids = Reference.Tokenizer.Encode(prompt, addSpecialTokens: false).ToArray();
        var request = new GenerationRequest { InputIds = [ids], AttentionMask = [Enumerable.Repeat(1, ids.Length).ToArray()], Options = GenerationOptions.Greedy(maxTokens) };
        return Reference.Generate(request).NewText![0];
    }

    public static Task<RunningServer> Start(ServeOptions options) => ServeHost.StartAsync(options, TextWriter.Null);

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Reference.Dispose();
        try { Directory.Delete(Folder, true); } catch (IOException) { }
    }
}
