using System.Threading.Channels;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime;
using Peft.Onnx.Server.Scheduling;

namespace Peft.Onnx.Server.Api;

/// <summary>
/// Queues one row on its model's scheduler and reads its tokens as they come. Errors before the first token become
/// status codes (the response has not started); a client that goes away or a stop sequence cancels the row.
/// </summary>
public sealed class GenerationCall : IDisposable
{
    private readonly CancellationTokenSource _cancel;
    private readonly GenerationJob _job;
    private readonly TextStream _text;

    public GenerationCall(ServedModel model, GenerationRequest request, IReadOnlyList<string> stops, CancellationToken aborted)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        _job = new GenerationJob(request, _cancel.Token);
        _text = new TextStream(model, stops);
        if (!model.Scheduler.TryEnqueue(_job))
        {
            _cancel.Dispose();
            throw new ApiException(429, $"the queue of model '{model.Name}' is full; retry later", "rate_limit_error", code: "queue_full", retryAfterSeconds: 1);
        }
    }

    /// <summary>Waits for the first token (or the error that came instead): errors here still get a status code.</summary>
    public async Task StartAsync()
    {
        try
        {
            await _job.Tokens.WaitToReadAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            throw Map(ex);
        }
    }

    /// <summary>
    /// Reads the tokens to the end, calling <paramref name="onText"/> with each piece of text safe to send and the ids
    /// since the last call.
    /// </summary>
    public async Task<GenerationOutcome> RunAsync(Func<string, int[], Task>? onText)
    {
        var pendingIds = new List<int>();
        try
        {
            while (await _job.Tokens.WaitToReadAsync().ConfigureAwait(false))
                while (_job.Tokens.TryRead(out var token))
                {
                    pendingIds.Add(token);
                    var delta = _text.Push(token);
                    if (onText != null && delta.Length > 0)
                    {
                        await onText(delta, [.. pendingIds]).ConfigureAwait(false);
                        pendingIds.Clear();
                    }
                    if (_text.Stopped)
                    {
                        _cancel.Cancel();
                        return await FinishAsync(onText, pendingIds, "stop").ConfigureAwait(false);
                    }
                }
        }
        catch (Exception ex) when (Unwrap(ex) is OperationCanceledException && _text.Stopped)
        {
        }
        catch (Exception ex)
        {
            throw Map(ex);
        }
        return await FinishAsync(onText, pendingIds, _text.Stopped || _job.StoppedOnToken ? "stop" : "length").ConfigureAwait(false);
    }

    private async Task<GenerationOutcome> FinishAsync(Func<string, int[], Task>? onText, List<int> pendingIds, string reason)
    {
        var rest = _text.Flush();
        if (onText != null && (rest.Length > 0 || pendingIds.Count > 0)) await onText(rest, [.. pendingIds]).ConfigureAwait(false);
        return new GenerationOutcome(_text.Text, [.. _text.Ids], reason);
    }

    private static Exception Unwrap(Exception ex) => ex is ChannelClosedException { InnerException: { } inner } ? inner : ex;

    private static Exception Map(Exception ex) => Unwrap(ex) switch
    {
        PeftOnnxException p => ApiException.BadRequest(p.Message),
        OperationCanceledException c => c,
        var other => other,
    };

    public void Dispose()
    {
        _cancel.Cancel();
        _cancel.Dispose();
    }
}
