namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// One request's row in a <see cref="ContinuousBatch"/>: its own generator state (sampler stream, tokens, stop
/// tokens, step limit) and adapter, so its answer is the one <see cref="OnnxModel.Generate"/> gives for the request alone.
/// </summary>
public sealed class BatchRow : IDisposable
{
    internal BatchRow(Generator generator, int promptLength, long adapterIndex)
    {
        Generator = generator;
        PromptLength = promptLength;
        AdapterIndex = adapterIndex;
    }

    internal Generator Generator { get; }

    /// <summary>The row's adapter_index of a multi-adapter export (-1: the base).</summary>
    internal long AdapterIndex { get; }

    /// <summary>Tokens of the prompt (after tokenization).</summary>
    public int PromptLength { get; }

    /// <summary>True once the row produced a stop token, reached its step limit or was cancelled.</summary>
    public bool IsDone => Generator.IsDone || IsCancelled;

    /// <summary>True when <see cref="Cancel"/> ended the row before it finished.</summary>
    public bool IsCancelled { get; private set; }

    /// <summary>True when the row ended on a stop token (false: step limit or cancel).</summary>
    public bool StoppedOnToken { get; internal set; }

    /// <summary>The tokens generated so far, up to and including a stop token.</summary>
    public int[] NewTokens => Generator.GetNewTokens()[0];

    /// <summary>Marks the row to leave the batch at the next step boundary (call from the thread that steps the batch).</summary>
    public void Cancel() => IsCancelled = true;

    public void Dispose() => Generator.Dispose();
}
