using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// A decoder-only batch whose rows join and leave between steps (continuous batching):
/// <code>
/// using var batch = new ContinuousBatch(model);
/// var row = batch.Join(GenerationRequest.FromText("Hello", GenerationOptions.Greedy(20)), out var first);
/// while (batch.Count > 0) foreach (var t in batch.Step()) ...;
/// </code>
/// A row is prefilled alone (the same run as a one-prompt generate), then its cache is copied into the batch,
/// left-padded with masked positions; rows that finish or are cancelled leave at the next step. Each row keeps its own
/// sampler and options, so its tokens are those of the request generated alone. Use from one thread.
/// </summary>
public sealed class ContinuousBatch : IDisposable
{
    private readonly OnnxModel _model;
    private readonly CausalLmGraph _graph;
    private readonly List<BatchRow> _rows = [];
    // prefilled rows waiting for the next step, merged into the batch cache together (one copy for all of them)
    private readonly List<(BatchRow Row, OrtValue[] Past, long[] Mask)> _joining = [];
    private readonly RunOptions _runOptions = new();
    private OrtValue[] _past = [];
    private long[] _mask = [];
    private int _length;
    private bool _disposed;

    public ContinuousBatch(OnnxModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (WhyUnsupported(model) is { } why) throw new PeftOnnxException($"{model.Directory}: continuous batching is not available: {why}");
        _model = model;
        _graph = model.CausalLm!;
    }

    /// <summary>Null when <paramref name="model"/> can run in a continuous batch, else why not.</summary>
    public static string? WhyUnsupported(OnnxModel model) =>
        model.CausalLm is not { } graph ? "the export is encoder-decoder (only decoder-only exports batch continuously)"
        : model.Device != Device.Cpu ? "the batch copies cache rows on the CPU (the model runs on cuda)"
        : graph.VirtualTokens > 0 ? "the export bakes virtual tokens into the graph"
        : null;

    /// <summary>Rows in the batch, joined ones included (each has a token to feed at the next step).</summary>
    public int Count => _rows.Count + _joining.Count;

    /// <summary>Positions in the batch cache (the longest row, with padding).</summary>
    public int Length => _length;

    /// <summary>
    /// Prefills one prompt alone and returns its row with its first token in <paramref name="first"/>. A row that is
    /// already done (stop token, or a limit of one token) never enters the batch; otherwise it is stepped with the
    /// others from the next <see cref="Step"/>. Throws <see cref="PeftOnnxException"/> for a bad request.
    /// </summary>
    public BatchRow Join(GenerationRequest request, out RowToken first, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(request);
        if ((request.Prompts?.Count ?? request.InputIds?.Count) != 1) throw new PeftOnnxException("a continuous-batch row takes exactly one prompt");
        var generator = _model.CreateGenerator(request);
        var row = new BatchRow(generator, generator.GetSequences()[0].Length);
        try
        {
            var token = generator.GenerateNextToken(cancellationToken)[0];
            first = Finish(row, token.TokenId);
            if (row.IsDone) return row;
            var (past, mask) = ((CausalLmSession)generator.Session).DetachCache();
            _joining.Add((row, past, mask));
            return row;
        }
        catch
        {
            row.Dispose();
            throw;
        }
    }

    private RowToken Finish(BatchRow row, int token)
    {
        bool done = row.Generator.IsDone;
        if (done) row.StoppedOnToken = IsStop(row, token);
        return new RowToken(row, token, done);
    }

    private static bool IsStop(BatchRow row, int token) => row.Generator.IsStopToken(token);

    /// <summary>Copies the joined rows' caches into the batch cache, all in one pass, each left-padded to the longest row.</summary>
    private void MergeJoining()
    {
        if (_joining.Count == 0) return;
        int length = Math.Max(_length, _joining.Max(j => j.Mask.Length));
        int rows = _rows.Count + _joining.Count;
        var newPast = new OrtValue[_graph.PastNames.Length];
        for (int i = 0; i < newPast.Length; i++)
        {
            var list = new List<CacheRows.Source>(rows);
            for (int r = 0; r < _rows.Count; r++) list.Add(new(_past[i], r, 0));
            foreach (var j in _joining) list.Add(new(j.Past[i], 0, 0));
            newPast[i] = CacheRows.Gather(list, length, _graph.CacheType);
        }
        var newMask = new long[rows * length];
        for (int r = 0; r < _rows.Count; r++) Array.Copy(_mask, r * _length, newMask, r * length + length - _length, _length);
        for (int k = 0; k < _joining.Count; k++)
        {
            var mask = _joining[k].Mask;
            Array.Copy(mask, 0, newMask, (_rows.Count + k) * length + length - mask.Length, mask.Length);
        }
        Replace(newPast, newMask, length);
        foreach (var j in _joining)
        {
            _rows.Add(j.Row);
            foreach (var p in j.Past.Distinct()) p.Dispose();
        }
        _joining.Clear();
    }

    private void Replace(OrtValue[] past, long[] mask, int length)
    {
        foreach (var p in _past.Distinct()) p.Dispose();
        _past = past;
        _mask = mask;
        _length = length;
    }

    /// <summary>
    /// Drops the rows that are done or cancelled, then runs one step for the others and returns their tokens. Rows
    /// that finish leave at the next call (or <see cref="RemoveDone"/>). Throws <see cref="OperationCanceledException"/>
    /// when <paramref name="cancellationToken"/> fires (the batch is then unchanged).
    /// </summary>
    public IReadOnlyList<RowToken> Step(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        RemoveDone();
        MergeJoining();
        if (_rows.Count == 0) return [];
        cancellationToken.ThrowIfCancellationRequested();
        int batch = _rows.Count, total = _length + 1;
        var ids = _rows.Select(r => (long)r.Generator.LastToken).ToArray();
        var mask = new long[batch * total];
        for (int r = 0; r < batch; r++)
        {
            Array.Copy(_mask, r * _length, mask, r * total, _length);
            mask[r * total + _length] = 1;
        }
        using var binding = _graph.Session.CreateIoBinding();
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [batch, 1]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [batch, total]);
        // graphs without position_ids derive positions from the mask themselves, so padding shifts no row
        using var positions = _graph.HasPositionIds ? OrtValue.CreateTensorValueFromMemory(CausalLmContract.PositionIdsFromMask(mask, batch, 1), [batch, 1]) : null;
        using var keepLast = OrtValue.CreateTensorValueFromMemory(new long[] { 1 }, []);
        binding.BindInput(CausalLmContract.InputIds, idsValue);
        binding.BindInput(CausalLmContract.AttentionMask, maskValue);
        if (positions != null) binding.BindInput(CausalLmContract.PositionIds, positions);
        if (_graph.KeepsLastLogits) binding.BindInput(CausalLmContract.NumLogitsToKeep, keepLast);
        for (int i = 0; i < _past.Length; i++) binding.BindInput(_graph.PastNames[i], _past[i]);
        binding.BindOutputToDevice(CausalLmContract.Logits, OrtMemoryInfo.DefaultInstance);
        foreach (var name in _graph.PresentNames) binding.BindOutputToDevice(name, OrtMemoryInfo.DefaultInstance);

        _runOptions.Terminate = false;
        using (cancellationToken.Register(static o => ((RunOptions)o!).Terminate = true, _runOptions))
        {
            try
            {
                _graph.Session.RunWithBinding(_runOptions, binding);
            }
            catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
            {
                _runOptions.Terminate = false;
                throw new OperationCanceledException(cancellationToken);
            }
            catch (OnnxRuntimeException ex)
            {
                throw new PeftOnnxException($"{_model.Directory}: ONNX Runtime failed: {ex.Message.Split('\n')[0]}", ex);
            }
        }

        // the presents become the next step's past as ORT returned them; only the logits are released here
        var values = binding.GetOutputValues().ToArray();
        using var logitsOwner = values[0];
        var logitsValue = values[0];
        var shape = logitsValue.GetTensorTypeAndShape().Shape;
        int seq = (int)shape[1], vocab = (int)shape[2];
        ReadOnlySpan<float> logits = logitsValue.GetTensorTypeAndShape().ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16
            ? FloatTensors.ToFloat(logitsValue)
            : logitsValue.GetTensorDataAsSpan<float>();
        var produced = new List<RowToken>(batch);
        for (int r = 0; r < batch; r++)
        {
            var row = _rows[r];
            var token = row.Generator.ChooseFrom(logits.Slice((r * seq + seq - 1) * vocab, vocab));
            produced.Add(Finish(row, token.TokenId));
        }
        Replace(values[1..], mask, total);
        return produced;
    }

    /// <summary>Removes the rows that are done or cancelled (the caller disposes them) and trims padding no row needs.</summary>
    public void RemoveDone()
    {
        foreach (var j in _joining.Where(j => j.Row.IsDone).ToList())
        {
            foreach (var p in j.Past.Distinct()) p.Dispose();
            _joining.Remove(j);
        }
        if (_rows.All(r => !r.IsDone)) return;
        var keep = Enumerable.Range(0, _rows.Count).Where(r => !_rows[r].IsDone).ToArray();
        int skip = _length;
        foreach (var r in keep)
        {
            int lead = 0;
            while (lead < _length && _mask[r * _length + lead] == 0) lead++;
            skip = Math.Min(skip, lead);
        }
        if (keep.Length == 0) skip = 0;
        int length = _length - skip;
        var newPast = new OrtValue[_past.Length];
        if (keep.Length > 0)
            for (int i = 0; i < _past.Length; i++)
                newPast[i] = CacheRows.Gather(keep.Select(r => new CacheRows.Source(_past[i], r, skip)).ToList(), length, _graph.CacheType);
        var newMask = new long[keep.Length * length];
        for (int k = 0; k < keep.Length; k++) Array.Copy(_mask, keep[k] * _length + skip, newMask, k * length, length);
        var rows = keep.Select(r => _rows[r]).ToList();
        _rows.Clear();
        _rows.AddRange(rows);
        Replace(keep.Length > 0 ? newPast : [], newMask, keep.Length > 0 ? length : 0);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var p in _past.Distinct()) p.Dispose();
        foreach (var p in _joining.SelectMany(j => j.Past).Distinct()) p.Dispose();
        _runOptions.Dispose();
    }
}
