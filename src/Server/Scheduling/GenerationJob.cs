using System.Threading.Channels;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Server.Scheduling;

/// <summary>
/// One request handed to a scheduler: its single-prompt generation request, the token ids it produces as a channel
/// the endpoint reads while they come, and the client's cancellation (a disconnect ends the row).
/// </summary>
public sealed class GenerationJob
{
    private readonly Channel<int> _tokens = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public GenerationJob(GenerationRequest request, CancellationToken cancellation)
    {
        Request = request;
        Cancellation = cancellation;
    }

    public GenerationRequest Request { get; }
    public CancellationToken Cancellation { get; }

    /// <summary>The produced token ids; completed when the row ends, with the error when it failed.</summary>
    public ChannelReader<int> Tokens => _tokens.Reader;

    /// <summary>Set when the row ended on a stop token (false: its token limit, or a cancel).</summary>
    public bool StoppedOnToken { get; private set; }

    /// <summary>When the job was queued (for time to first token).</summary>
    public long QueuedAt { get; } = System.Diagnostics.Stopwatch.GetTimestamp();

    internal void Deliver(int token) => _tokens.Writer.TryWrite(token);

    internal void Complete(bool stoppedOnToken)
    {
        StoppedOnToken = stoppedOnToken;
        _tokens.Writer.TryComplete();
    }

    internal void Fail(Exception error) => _tokens.Writer.TryComplete(error);
}
