using Peft.Onnx.Runtime;
using Peft.Onnx.Server.Api;
using Peft.Onnx.Runtime.Chat;
using Peft.Onnx.Server.Scheduling;

namespace Peft.Onnx.Server;

/// <summary>
/// One loaded export under the name clients ask for, with its scheduler and (when the folder has one) its chat
/// template.
/// </summary>
public sealed class ServedModel : IAsyncDisposable
{
    public ServedModel(string name, OnnxModel model, IGenerationScheduler scheduler, ChatTemplateSource chat)
    {
        Name = name;
        Model = model;
        Scheduler = scheduler;
        Chat = chat;
    }

    public string Name { get; }
    public OnnxModel Model { get; }
    public IGenerationScheduler Scheduler { get; }
    public ChatTemplateSource Chat { get; }

    /// <summary>Created (Unix seconds), as /v1/models reports it.</summary>
    public long Created { get; } = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>Text to ids: with special tokens as tokenizer(text) (completions), without for a rendered chat (the template writes them).</summary>
    public int[] Encode(string text, bool addSpecialTokens)
    {
        if (!Model.HasTokenizer) throw ApiException.BadRequest($"model '{Name}' has no tokenizer files: send the prompt as an array of token ids", "prompt");
        return Model.Encode(text, addSpecialTokens);
    }

    /// <summary>Ids to text as the Runtime decodes them (special tokens skipped; "" without a tokenizer).</summary>
    public string Decode(IReadOnlyList<int> ids)
    {
        return Model.HasTokenizer ? Model.Decode(ids) : "";
    }

    /// <summary>
    /// The single-prompt request `peft-onnx generate` would run for these parameters; 400 when the prompt and
    /// max_tokens do not fit the context or an id is outside the vocabulary. <paramref name="adapter"/> picks one of a
    /// multi-adapter export's adapters (null: the base).
    /// </summary>
    public GenerationRequest Request(int[] prompt, SamplingParameters p, int defaultMaxTokens, int maxTokensLimit, bool fromText, string? adapter = null)
    {
        if (prompt.Length == 0) throw ApiException.BadRequest("the prompt is empty (expected at least one token)", "prompt");
        foreach (var id in prompt)
            if (id < 0 || id >= Model.VocabSize) throw ApiException.BadRequest($"token id {id} is outside the vocabulary (0..{Model.VocabSize - 1})", "prompt");
        int room = Model.ContextLength is { } context ? context - prompt.Length : int.MaxValue;
        if (room <= 0)
            throw ApiException.BadRequest($"the prompt has {prompt.Length} tokens; the model's context is {Model.ContextLength}", "prompt", "context_length_exceeded");
        int maxTokens = p.MaxTokens ?? Math.Min(defaultMaxTokens, room);
        if (maxTokens > maxTokensLimit) throw ApiException.BadRequest($"'max_tokens' = {maxTokens} is above this server's limit of {maxTokensLimit}", "max_tokens");
        if (maxTokens > room)
            throw ApiException.BadRequest($"the prompt ({prompt.Length} tokens) and max_tokens ({maxTokens}) exceed the model's context of {Model.ContextLength} tokens", "max_tokens", "context_length_exceeded");
        var options = new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            DoSample = p.Temperature switch { null => null, 0 => false, _ => true },
            Temperature = p.Temperature is > 0 ? p.Temperature : null,
            TopP = p.TopP,
            TopK = p.TopK,
            Seed = p.Seed,
            StopTokenIds = p.IgnoreEos ? [] : null,
        };
        // text prompts attend to every token, as generate --prompt does; ids alone follow transformers' mask rule
        return fromText
            ? new GenerationRequest { InputIds = [prompt], AttentionMask = [Enumerable.Repeat(1, prompt.Length).ToArray()], Options = options, Adapter = adapter }
            : GenerationRequest.FromIds(prompt, options) with { Adapter = adapter };
    }

    public async ValueTask DisposeAsync()
    {
        await Scheduler.DisposeAsync().ConfigureAwait(false);
        Model.Dispose();
    }
}
