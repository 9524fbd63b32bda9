using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime.Chat;
using TemplateMessage = Peft.Onnx.Runtime.Chat.ChatMessage;

namespace Peft.Onnx.Runtime.AI;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over a loaded <see cref="OnnxModel"/>: the messages are rendered
/// with the chat template of the folder's tokenizer_config.json (add_generation_prompt on), tokenized without special
/// tokens, and generated with the Runtime, so an application uses the same abstraction as with ORT GenAI or an
/// OpenAI endpoint:
/// <code>
/// using var model = OnnxModel.Load("out/chat-model", DeviceOptions.Auto);
/// IChatClient chat = new OnnxChatClient(model);
/// Console.WriteLine((await chat.GetResponseAsync("Hello!")).Text);
/// </code>
/// ChatOptions map as the serve endpoint maps OpenAI's fields: Temperature 0 is greedy, a positive one samples
/// (TopP, TopK, Seed apply), null takes the folder's generation_config.json; MaxOutputTokens bounds the answer;
/// StopSequences end it before the first one. Safe to use from many threads (the model is).
/// </summary>
public sealed class OnnxChatClient : IChatClient
{
    private readonly OnnxModel _model;
    private readonly bool _ownsModel;
    private readonly ChatTemplateSource _template;

    /// <param name="model">The loaded model the client generates with.</param>
    /// <param name="ownsModel">Dispose the model with this client.</param>
    public OnnxChatClient(OnnxModel model, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _ownsModel = ownsModel;
        _template = ChatTemplateSource.Load(model.Directory);
        Metadata = new ChatClientMetadata("peft-onnx", null, Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Directory)));
    }

    public ChatClientMetadata Metadata { get; }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        UsageDetails? usage = null;
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            finish = update.FinishReason ?? finish;
            usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details ?? usage;
        }
        return new ChatResponse(new Microsoft.Extensions.AI.ChatMessage(ChatRole.Assistant, text.ToString()))
        {
            FinishReason = finish,
            Usage = usage,
            ModelId = Metadata.DefaultModelId,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var template = _template.Template ?? throw new PeftOnnxException($"{_model.Directory}: no chat template: {_template.Missing}");
        var rendered = template.Render(messages.Select(m => new TemplateMessage(m.Role.Value, m.Text)).ToList(), _template.BosToken, _template.EosToken, addGenerationPrompt: true);
        var prompt = _model.Encode(rendered, addSpecialTokens: false);
        var request = new GenerationRequest { InputIds = [prompt], AttentionMask = [Enumerable.Repeat(1, prompt.Length).ToArray()], Options = Options(options) };
        var stops = options?.StopSequences?.Where(s => s.Length > 0).ToArray() ?? [];
        int holdBack = stops.Length == 0 ? 0 : stops.Max(s => s.Length) - 1;
        var ids = new List<int>();
        int sent = 0;
        string text = "";
        bool stopped = false;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var tokens = _model.StreamAsync(request, stop.Token).ConfigureAwait(false).GetAsyncEnumerator();
        try
        {
            while (true)
            {
                try
                {
                    if (!await tokens.MoveNextAsync()) break;
                }
                catch (OperationCanceledException) when (stopped)
                {
                    break;
                }
                ids.Add(tokens.Current.TokenId);
                text = _model.Decode(ids);
                int cut = stops.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
                if (cut >= 0)
                {
                    text = text[..cut];
                    stopped = true;
                    break;
                }
                if (text.EndsWith('\uFFFD')) continue;
                int safe = Math.Max(sent, text.Length - holdBack);
                if (safe > sent)
                {
                    yield return Update(text[sent..safe]);
                    sent = safe;
                }
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await tokens.DisposeAsync();
        }
        if (text.Length > sent) yield return Update(text[sent..]);
        bool stopToken = ids.Count > 0 && (_model.GenerationDefaults.EosTokenId ?? []).Contains(ids[^1]);
        var last = new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails
        {
            InputTokenCount = prompt.Length, OutputTokenCount = ids.Count, TotalTokenCount = prompt.Length + ids.Count,
        })])
        {
            FinishReason = stopped || stopToken ? ChatFinishReason.Stop : ChatFinishReason.Length,
            ModelId = Metadata.DefaultModelId,
        };
        yield return last;
    }

    private ChatResponseUpdate Update(string text) => new(ChatRole.Assistant, text) { ModelId = Metadata.DefaultModelId };

    private static GenerationOptions Options(ChatOptions? o) => o == null ? new GenerationOptions() : new GenerationOptions
    {
        MaxNewTokens = o.MaxOutputTokens,
        DoSample = o.Temperature switch { null => null, 0 => false, _ => true },
        Temperature = o.Temperature is > 0 ? o.Temperature : null,
        TopP = o.TopP,
        TopK = o.TopK,
        Seed = o.Seed is { } seed ? unchecked((ulong)seed) : null,
    };

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey != null ? null
        : serviceType == typeof(ChatClientMetadata) ? Metadata
        : serviceType == typeof(OnnxModel) ? _model
        : serviceType.IsInstanceOfType(this) ? this
        : null;

    public void Dispose()
    {
        if (_ownsModel) _model.Dispose();
    }
}
