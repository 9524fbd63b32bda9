using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Runtime.Adapters;
using Peft.Onnx.Runtime.Sampling;

namespace Peft.Onnx.Runtime;

/// <summary>
/// One generation in progress (a batch of prompts), stepped a token at a time as ORT GenAI's Generator:
/// <code>
/// using var generator = model.CreateGenerator(request);
/// while (!generator.IsDone) foreach (var token in generator.GenerateNextToken()) ...;
/// var ids = generator.GetSequences();
/// </code>
/// A generator owns its key/value cache and IO binding; use one generator from one thread at a time. Any number of
/// generators may run at once on one <see cref="OnnxModel"/>.
/// </summary>
public sealed class Generator : IDisposable
{
    private readonly OnnxModel _model;
    private readonly DecodingSession _session;
    private readonly ResolvedOptions _options;
    private readonly TokenChooser _chooser;
    private readonly List<int>[] _sequences;
    private readonly List<int>[] _newTokens;
    private readonly bool[] _finished;
    private readonly HashSet<int> _stop;
    private readonly int _maxSteps;
    private readonly RunOptions _runOptions = new();
    private int _step;
    private bool _disposed;

    internal Generator(OnnxModel model, int[][] prompts, int[][] masks, ResolvedOptions options, int maxSteps, long[]? adapterIndices = null,
        AdapterLease? adapters = null)
    {
        _model = model;
        _options = options;
        _chooser = new TokenChooser(options);
        _stop = [.. options.StopTokenIds];
        _maxSteps = maxSteps;
        int batch = prompts.Length;
        _finished = new bool[batch];
        _newTokens = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var promptIds = prompts.Select(p => p.Select(i => (long)i).ToArray()).ToArray();
        var promptMasks = masks.Select(m => m.Select(i => (long)i).ToArray()).ToArray();
        try
        {
            if (model.CausalLm is { } causal)
            {
                _session = new CausalLmSession(causal, model.VocabSize, promptIds, promptMasks, options.PadTokenId, model.CacheMemory, adapterIndices, adapters);
                int length = prompts.Max(p => p.Length);
                _sequences = prompts.Select(p => Enumerable.Repeat(options.PadTokenId, length - p.Length).Concat(p).ToList()).ToArray();
            }
            else
            {
                int start = model.DecoderStartTokenId;
                _session = new Seq2SeqSession(model.Seq2Seq!, model.VocabSize, promptIds, promptMasks, options.PadTokenId, start, model.CacheMemory, adapterIndices);
                _sequences = prompts.Select(_ => new List<int> { start }).ToArray();
            }
        }
        catch
        {
            _runOptions.Dispose();
            throw;
        }
    }

    public int BatchSize => _finished.Length;

    internal DecodingSession Session => _session;

    /// <summary>Steps run so far (new tokens per row, padding included).</summary>
    public int Step => _step;

    /// <summary>True when every row produced a stop token or the step limit was reached.</summary>
    public bool IsDone => _step >= _maxSteps || _finished.All(f => f);

    /// <summary>
    /// Runs one step and returns the tokens it produced for the rows still running (finished rows receive the pad
    /// token and report nothing). Throws <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/>
    /// fires, also in the middle of a run.
    /// </summary>
    public IReadOnlyList<GeneratedToken> GenerateNextToken(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsDone) throw new InvalidOperationException("the generator is done");
        cancellationToken.ThrowIfCancellationRequested();
        // a cancel that landed after the previous run had ended left the flag set: it belongs to that step, not to this one
        _runOptions.Terminate = false;
        using (cancellationToken.Register(static o => ((RunOptions)o!).Terminate = true, _runOptions))
        {
            try
            {
                _session.Run(_runOptions);
            }
            catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
            {
                _runOptions.Terminate = false;
                throw new OperationCanceledException(cancellationToken);
            }
            catch (OnnxRuntimeException ex)
            {
                throw new Core.PeftOnnxException($"{_model.Directory}: ONNX Runtime failed: {ex.Message.Split('\n')[0]}", ex);
            }
        }

        var produced = new List<GeneratedToken>(BatchSize);
        var next = new long[BatchSize];
        for (int b = 0; b < BatchSize; b++)
        {
            int token;
            if (_finished[b]) token = _options.PadTokenId;
            else
            {
                token = _chooser.Choose(_session.Logits(b), _sequences[b]);
                _newTokens[b].Add(token);
                produced.Add(new GeneratedToken(b, _step, token));
                if (_stop.Contains(token)) _finished[b] = true;
            }
            _sequences[b].Add(token);
            next[b] = token;
        }
        _step++;
        if (!IsDone) _session.Feed(next);
        return produced;
    }

    /// <summary>
    /// Row 0's next token from logits another session computed (the continuous batch steps the row after its prefill
    /// here): the same choice and bookkeeping as <see cref="GenerateNextToken"/>, so the row's tokens and sampler
    /// stream stay those of this generator.
    /// </summary>
    internal GeneratedToken ChooseFrom(ReadOnlySpan<float> logits)
    {
        if (BatchSize != 1 || IsDone) throw new InvalidOperationException("ChooseFrom steps a single running row");
        int token = _chooser.Choose(logits, _sequences[0]);
        _newTokens[0].Add(token);
        var produced = new GeneratedToken(0, _step, token);
        if (_stop.Contains(token)) _finished[0] = true;
        _sequences[0].Add(token);
        _step++;
        return produced;
    }

    internal bool IsStopToken(int token) => _stop.Contains(token);

    /// <summary>The pad token of this generation's options (what left-pads its prompt in a batch).</summary>
    internal int PadTokenId => _options.PadTokenId;

    /// <summary>Row 0's last token (the one the next step feeds).</summary>
    internal int LastToken => _sequences[0][^1];

    /// <summary>Token ids as Hugging Face generate returns them (see <see cref="GenerationResult.Sequences"/>).</summary>
    public int[][] GetSequences() => _sequences.Select(s => s.ToArray()).ToArray();

    /// <summary>Per row the tokens generated so far, up to and including its stop token.</summary>
    public int[][] GetNewTokens() => _newTokens.Select(s => s.ToArray()).ToArray();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _session.Dispose();
        _runOptions.Dispose();
    }
}
