using System.Diagnostics;
using System.Runtime.CompilerServices;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Bench.Load;

/// <summary>The four ways an application calls the runtime; the workers take turns with them.</summary>
public enum ApiStyle
{
    /// <summary><see cref="OnnxModel.Generate"/> on the caller's thread.</summary>
    Generate,
    /// <summary><see cref="OnnxModel.GenerateAsync"/>, awaited.</summary>
    GenerateAsync,
    /// <summary><see cref="OnnxModel.StreamAsync"/>, tokens gathered as they come.</summary>
    Stream,
    /// <summary><see cref="OnnxModel.CreateGenerator"/> stepped with <see cref="Generator.GenerateNextToken"/>.</summary>
    Generator,
}

/// <summary>
/// A running estimate of one request's latency under the current load (moving average of completed requests), so a
/// cancel timer can be set to fire part-way through a request rather than before it starts or after it ends.
/// </summary>
public sealed class LatencyEstimate(double initialSeconds)
{
    private double _seconds = initialSeconds;

    public double Seconds => Volatile.Read(ref _seconds);

    // Lost updates between threads only blur an average; no lock needed.
    public void Add(double seconds) => Volatile.Write(ref _seconds, 0.9 * Volatile.Read(ref _seconds) + 0.1 * seconds);
}

/// <summary>
/// One of the concurrent callers: until the deadline, picks a prompt, sends it with its turn's API style, cancels a
/// share of the requests part-way (after k tokens for streams, else a timer that may fire inside a run), and checks
/// every finished answer token for token (and text for text) against the prompt's sequential answer. Promptness is
/// judged in steps as well as seconds, since seconds on a shared machine measure its load: a step that starts after
/// the cancel, or a streamed token that comes after it, is a failure whatever the clock says.
/// </summary>
public sealed class LoadWorker(int index, OnnxModel model, IReadOnlyList<LoadPrompt> prompts, LoadSettings settings, LoadCounters counters,
    LatencyEstimate latency, Stopwatch clock)
{
    private readonly Random _random = new(settings.Seed * 7919 + index);

    /// <summary>Seconds from start to answer of every completed request.</summary>
    public List<double> Latencies { get; } = [];

    /// <summary>Seconds from the cancel to the request's end of every cancelled request.</summary>
    public List<double> CancelLatencies { get; } = [];

    public Dictionary<ApiStyle, int> RequestsByStyle { get; } = Enum.GetValues<ApiStyle>().ToDictionary(s => s, _ => 0);

    public async Task RunAsync()
    {
        for (int n = 0; clock.Elapsed.TotalSeconds < settings.DurationSeconds; n++)
        {
            var prompt = prompts[_random.Next(prompts.Count)];
            var style = (ApiStyle)((index + n) % 4);
            bool cancel = _random.NextDouble() < settings.CancelFraction;
            RequestsByStyle[style]++;
            await OneRequest(prompt, style, cancel).ConfigureAwait(false);
        }
    }

    private async Task OneRequest(LoadPrompt prompt, ApiStyle style, bool cancel)
    {
        using var cts = cancel ? new CancellationTokenSource() : null;
        var cancelledAt = new StrongBox<long>();
        using var registration = cts?.Token.Register(() => Interlocked.Exchange(ref cancelledAt.Value, Stopwatch.GetTimestamp()));
        var token = cts?.Token ?? CancellationToken.None;
        // streams are cancelled after k of their tokens (between steps); the other calls by a timer that may fire inside a run
        int cancelAfterTokens = cancel && style == ApiStyle.Stream && settings.NewTokens > 1 ? _random.Next(1, settings.NewTokens) : 0;
        if (cancel && cancelAfterTokens == 0) cts!.CancelAfter(TimeSpan.FromSeconds(_random.NextDouble() * latency.Seconds));

        counters.Start(cancel);
        long start = Stopwatch.GetTimestamp();
        string where = $"prompt {prompt.Index} via {style}";
        try
        {
            var (tokens, text) = await Call(where, prompt.Request, style, token, cts, cancelAfterTokens, cancelledAt).ConfigureAwait(false);
            var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            Latencies.Add(seconds);
            latency.Add(seconds);
            counters.Complete(tokens.Length, cancel);
            Check(where, prompt, tokens, text);
        }
        catch (OperationCanceledException) when (cts?.IsCancellationRequested == true)
        {
            // the token reads as cancelled before its callbacks have run: wait for the stamp of ours
            SpinWait.SpinUntil(() => Interlocked.Read(ref cancelledAt.Value) != 0, TimeSpan.FromSeconds(1));
            var seconds = Stopwatch.GetElapsedTime(Interlocked.Read(ref cancelledAt.Value)).TotalSeconds;
            CancelLatencies.Add(seconds);
            counters.Cancel();
            if (seconds > settings.CancelDeadlineSeconds)
                counters.SlowCancel($"{where}: ended {seconds:F3} s after its cancel (deadline {settings.CancelDeadlineSeconds} s)");
        }
        catch (Exception ex)
        {
            counters.Error($"{where}: {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
        }
        finally
        {
            counters.End();
        }
    }

    private async Task<(int[] Tokens, string? Text)> Call(string where, GenerationRequest request, ApiStyle style, CancellationToken token,
        CancellationTokenSource? cts, int cancelAfterTokens, StrongBox<long> cancelledAt)
    {
        switch (style)
        {
            case ApiStyle.Generate:
            {
                var r = model.Generate(request, token);
                return (r.NewTokens[0], r.NewText?[0]);
            }
            case ApiStyle.GenerateAsync:
            {
                var r = await model.GenerateAsync(request, token).ConfigureAwait(false);
                return (r.NewTokens[0], r.NewText?[0]);
            }
            case ApiStyle.Stream:
            {
                var ids = new List<int>();
                await foreach (var t in model.StreamAsync(request, token).ConfigureAwait(false))
                {
                    if (cts?.IsCancellationRequested == true)
                        counters.LateStep($"{where}: token {ids.Count} came after the stream was cancelled");
                    ids.Add(t.TokenId);
                    if (ids.Count == cancelAfterTokens) cts!.Cancel();
                }
                return (ids.ToArray(), null);
            }
            default:
            {
                using var generator = model.CreateGenerator(request);
                while (!generator.IsDone)
                {
                    long stepStart = Stopwatch.GetTimestamp();
                    generator.GenerateNextToken(token);
                    // the stamp is taken after the token reads as cancelled, so a stamp before the step means the step
                    // began with the token already cancelled and should have thrown at once
                    long cancelled = Interlocked.Read(ref cancelledAt.Value);
                    if (cancelled != 0 && cancelled < stepStart)
                        counters.LateStep($"{where}: step {generator.Step - 1} ran although it began after the cancel");
                }
                return (generator.GetNewTokens()[0], null);
            }
        }
    }

    private void Check(string where, LoadPrompt prompt, int[] tokens, string? text)
    {
        var expected = prompt.ExpectedTokens;
        int first = 0;
        while (first < Math.Min(tokens.Length, expected.Length) && tokens[first] == expected[first]) first++;
        if (first < tokens.Length || first < expected.Length)
            counters.Mismatch(first < Math.Min(tokens.Length, expected.Length)
                ? $"{where}: new token {first} is {tokens[first]}, the sequential run gave {expected[first]}"
                : $"{where}: {tokens.Length} new tokens, the sequential run gave {expected.Length}");
        else if (text != null && prompt.ExpectedText != null && text != prompt.ExpectedText)
            counters.Mismatch($"{where}: same tokens but the text differs from the sequential run's");
    }
}
