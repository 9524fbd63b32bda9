using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime.Adapters;

namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// A decoder-only batch whose rows join and leave between steps (continuous batching):
/// <code>
/// using var batch = new ContinuousBatch(model);
/// var row = batch.Join(GenerationRequest.FromText("Hello", GenerationOptions.Greedy(20)), out var first);
/// while (batch.Count > 0) foreach (var t in batch.Step()) ...;
/// </code>
/// Rows added together (<see cref="Add"/>) are prefilled in one run (<see cref="Prefill"/>: left-padded prompts, as a
/// batched generate runs them; a prompt found in the <see cref="PromptCache"/> skips the run), then their caches are
/// copied into the batch cache, left-padded with masked positions, at the next step (into the slots of rows that left
/// where they fit); rows that finish or are cancelled leave at the next step. Each row keeps its own sampler, options
/// and adapter, so its tokens are those of the request generated alone. Use from one thread.
/// </summary>
public sealed class ContinuousBatch : IDisposable
{
    private readonly OnnxModel _model;
    private readonly CausalLmGraph _graph;
    private readonly int _lead;
    // the batch cache's rows in order; null: a row that left, whose slot the next joining row takes over in place
    private readonly List<BatchRow?> _rows = [];
    // added rows waiting for their prefill
    private readonly List<BatchRow> _waiting = [];
    // prefilled rows waiting for the next step, merged into the batch cache together (one copy for all of them)
    private readonly List<(BatchRow Row, PrefillCache Cache, int Index)> _joining = [];
    private readonly RunOptions _runOptions = new();
    private OrtValue[] _past = [];
    private long[] _mask = [];
    private int _length;
    private bool _disposed;
    // the adapter state (slots and their stacks) the batch's adapter rows started with, held by the batch itself so its
    // stacks stay bound while any row runs; base rows (index -1, the base slot in every state) fit any state
    private AdapterLease? _adapterState;
    private readonly PromptCache? _prompts;
    // the adapter state the cached prompts' adapter indices refer to (base rows, index -1, fit any)
    private AdapterSlots? _promptState;

    /// <param name="timings">Where the batch adds its phases' seconds (null: its own).</param>
    /// <param name="prompts">Prefilled prompts to reuse and to add to (null: every prompt is prefilled).</param>
    public ContinuousBatch(OnnxModel model, BatchTimings? timings = null, PromptCache? prompts = null)
    {
        Timings = timings ?? new BatchTimings();
        _prompts = prompts;
        ArgumentNullException.ThrowIfNull(model);
        if (WhyUnsupported(model) is { } why) throw new PeftOnnxException($"{model.Directory}: continuous batching is not available: {why}");
        _model = model;
        _graph = model.CausalLm!;
        _lead = _graph.VirtualTokens;
    }

    /// <summary>Null when <paramref name="model"/> can run in a continuous batch, else why not.</summary>
    public static string? WhyUnsupported(OnnxModel model) =>
        model.CausalLm == null
            ? "the export is encoder-decoder: its decoder graph takes no self-attention mask, so rows at different steps cannot share one padded self-attention cache"
            : model.Device != Device.Cpu ? "the batch copies cache rows on the CPU (the model runs on cuda)"
            : model.CausalLm.VirtualTokens == 0 ? null
            // as PEFT, such graphs place real tokens at virtual tokens + cache length: a row's left padding would move them
            : model.Config.Family.TakesPositionIds
                ? $"the export bakes virtual tokens into a {model.Config.Family.ModelType} graph, whose real tokens sit at positions counted from the cache length (padding in a shared batch would shift them)"
            // the batch keeps each row's virtual tokens at the front of its cache, which only this graph form holds them in
            : !File.Exists(Path.Combine(model.Directory, CausalLmContract.PrefixInCacheFile))
                ? $"the export bakes virtual tokens outside the key/value cache (no {CausalLmContract.PrefixInCacheFile})"
                : null;

    /// <summary>Where the batch's thread spent its time so far.</summary>
    public BatchTimings Timings { get; }

    /// <summary>Rows in the batch, added and joined ones included.</summary>
    public int Count => _rows.Count(r => r != null) + _joining.Count + _waiting.Count;

    /// <summary>Positions in the batch cache (the longest row, with padding; a baked prompt's virtual tokens not counted).</summary>
    public int Length => _length;

    /// <summary>
    /// Checks one single-prompt request and adds its row; <see cref="Prefill"/> runs its prompt with the other added
    /// rows. Throws <see cref="PeftOnnxException"/> for a bad request (the batch is then unchanged). Returns null, adding
    /// nothing, while adapters added or removed at run time since the batch's rows started are not yet theirs: such a
    /// request joins once the batch has drained (rows share one set of adapter stacks).
    /// </summary>
    public BatchRow? Add(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(request);
        if ((request.Prompts?.Count ?? request.InputIds?.Count) != 1) throw new PeftOnnxException("a continuous-batch row takes exactly one prompt");
        long started = Stopwatch.GetTimestamp();
        var generator = _model.CreateGenerator(request);
        Timings.Add(BatchPhase.Add, started);
        try
        {
            var state = ((CausalLmSession)generator.Session).AdapterState;
            if (Count == 0) HoldAdapterState(null);
            if (state != null && _adapterState != null && !ReferenceEquals(state, _adapterState.Slots))
            {
                generator.Dispose();
                return null;
            }
            long adapter = state?.IndexOf(request.RowAdapters(1)[0]) ?? -1;
            if (state != null && !ReferenceEquals(state, _promptState))
            {
                if (_promptState != null) _prompts?.Clear();
                _promptState = state;
            }
            var row = new BatchRow(generator, generator.GetSequences()[0].Length, adapter);
            if (state != null && _adapterState == null) HoldAdapterState(state);
            _waiting.Add(row);
            return row;
        }
        catch
        {
            generator.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs the prompts of every added row in one run and returns each row's first token (in the order they were
    /// added). A row that is done after it (stop token, or a limit of one token) never enters the batch; the others
    /// are stepped from the next <see cref="Step"/>. On failure the added rows are dropped (their owner disposes them).
    /// </summary>
    public IReadOnlyList<RowToken> Prefill(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_waiting.Count == 0) return [];
        var rows = _waiting.ToArray();
        _waiting.Clear();
        var prompts = new long[rows.Length][];
        var masks = new long[rows.Length][];
        for (int r = 0; r < rows.Length; r++) (prompts[r], masks[r]) = ((CausalLmSession)rows[r].Generator.Session).PromptRow();
        var keys = rows.Select((row, r) => _prompts != null ? new PromptKey(row.AdapterIndex, prompts[r], masks[r]) : null).ToArray();
        var cached = keys.Select(k => k != null ? _prompts!.Find(k) : null).ToArray();
        var run = Enumerable.Range(0, rows.Length).Where(r => cached[r] == null).ToArray();
        var produced = new RowToken[rows.Length];
        // the prompts to run go first: a failed run leaves the batch as it was
        if (run.Length > 0) RunPrompts(rows, prompts, masks, keys, run, produced, cancellationToken);
        long started = Stopwatch.GetTimestamp();
        for (int r = 0; r < rows.Length; r++)
        {
            if (cached[r] is not { } entry) continue;
            produced[r] = Finish(rows[r], rows[r].Generator.ChooseFrom(entry.Logits).TokenId);
            if (rows[r].IsDone) continue;
            var past = entry.Past.Select(p => CacheRows.FromRow(p, _graph.KvHeads, _graph.HeadDim, _graph.CacheType)).ToArray();
            _joining.Add((rows[r], new PrefillCache(past, entry.Mask, entry.Length, 1), 0));
        }
        Timings.Add(BatchPhase.Join, started);
        return produced;
    }

    /// <summary>Runs the prompts of <paramref name="run"/>'s rows in one run, chooses their first tokens and caches their prefills.</summary>
    private void RunPrompts(BatchRow[] all, long[][] allPrompts, long[][] allMasks, PromptKey?[] keys, int[] run, RowToken[] produced,
        CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        var rows = run.Select(r => all[r]).ToArray();
        var prompts = run.Select(r => allPrompts[r]).ToArray();
        var masks = run.Select(r => allMasks[r]).ToArray();
        var adapters = rows.Any(r => r.AdapterIndex >= 0) ? rows.Select(r => r.AdapterIndex).ToArray() : null;
        using var session = new CausalLmSession(_graph, _model.VocabSize, prompts, masks, rows[0].Generator.PadTokenId, _model.CacheMemory, adapters);
        BindAdapterStacks(session.Binding);
        Run(() => session.Run(_runOptions), cancellationToken);
        Timings.Add(BatchPhase.Prefill, started);

        started = Stopwatch.GetTimestamp();
        for (int r = 0; r < rows.Length; r++) produced[run[r]] = Finish(rows[r], rows[r].Generator.ChooseFrom(session.Logits(r)).TokenId);
        Timings.Add(BatchPhase.Choose, started);
        var (past, mask) = session.DetachCache();
        int length = mask.Length / rows.Length;
        if (_prompts != null)
        {
            started = Stopwatch.GetTimestamp();
            for (int r = 0; r < rows.Length; r++)
            {
                var rowPast = past.Select(p => CacheRows.Row(p, r, _lead, prompts[r].Length)).ToArray();
                var rowMask = mask.AsSpan(r * length + length - prompts[r].Length, prompts[r].Length).ToArray();
                _prompts.Add(keys[run[r]]!, new PromptCacheEntry(rowPast, rowMask, session.Logits(r).ToArray()));
            }
            Timings.Add(BatchPhase.Join, started);
        }
        var staying = Enumerable.Range(0, rows.Length).Where(r => !rows[r].IsDone).ToArray();
        var cache = new PrefillCache(past, mask, length, staying.Length);
        if (staying.Length == 0) cache.Release();
        foreach (var r in staying) _joining.Add((rows[r], cache, r));
    }

    /// <summary>
    /// Adds and prefills one prompt alone (<see cref="Add"/> then <see cref="Prefill"/>) and returns its row with its
    /// first token in <paramref name="first"/>.
    /// </summary>
    public BatchRow Join(GenerationRequest request, out RowToken first, CancellationToken cancellationToken = default)
    {
        if (_waiting.Count > 0) throw new InvalidOperationException("rows were added and not prefilled: call Prefill");
        var row = Add(request) ?? throw new PeftOnnxException("the model's adapters changed since this batch's rows started: join once the batch has drained");
        try
        {
            first = Prefill(cancellationToken)[0];
            return row;
        }
        catch
        {
            row.Dispose();
            throw;
        }
    }

    /// <summary>The stacks of adapters added or removed at run time (none bound until the first change: the graph's defaults serve).</summary>
    private void BindAdapterStacks(OrtIoBinding binding)
    {
        if (_adapterState?.Slots is not { } slots) return;
        for (int i = 0; i < slots.InputNames.Count; i++) binding.BindInput(slots.InputNames[i], slots.InputValues[i]);
    }

    /// <summary>Ends the batch's hold on its adapter state and takes one on <paramref name="state"/> (alive: a new row's generator holds it).</summary>
    private void HoldAdapterState(AdapterSlots? state)
    {
        _adapterState?.Dispose();
        _adapterState = state != null && state.TryAcquire() ? new AdapterLease(state) : null;
    }

    private RowToken Finish(BatchRow row, int token)
    {
        bool done = row.Generator.IsDone;
        if (done) row.StoppedOnToken = row.Generator.IsStopToken(token);
        return new RowToken(row, token, done);
    }

    /// <summary>
    /// Brings the joined rows into the batch cache: each into the slot of a row that left, in place, when every one
    /// finds a slot at least as long as its cache; else the batch cache is rebuilt once for all rows. A rebuild also
    /// runs when over a quarter of the slots are empty or when padding no row needs grew to an eighth of the cache: an
    /// empty slot or a padded position costs some compute every step, a rebuild copies the whole cache, so it waits
    /// until it pays (under load a leaver's slot is usually taken a step or two later).
    /// </summary>
    private void MergeJoining()
    {
        var free = Enumerable.Range(0, _rows.Count).Where(r => _rows[r] == null).ToList();
        if (_joining.Count > 0 && _joining.Count <= free.Count && _joining.All(j => j.Cache.Length <= _length))
        {
            for (int k = 0; k < _joining.Count; k++)
            {
                var (row, cache, index) = _joining[k];
                int slot = free[k];
                for (int i = 0; i < _past.Length; i++) CacheRows.Overwrite(cache.Past[i], index, _past[i], slot, _lead);
                Array.Clear(_mask, slot * _length, _length - cache.Length);
                Array.Copy(cache.Mask, index * cache.Length, _mask, slot * _length + _length - cache.Length, cache.Length);
                _rows[slot] = row;
                cache.Release();
            }
            _joining.Clear();
        }
        int unused = LeadingPadding();
        int empty = _rows.Count(r => r == null);
        if (_joining.Count > 0 || empty * 4 > _rows.Count || (unused > 0 && unused * 8 >= _length)) Rebuild(unused);
    }

    /// <summary>Positions at the front of the cache that every row masks out.</summary>
    private int LeadingPadding()
    {
        int skip = _length;
        for (int r = 0; r < _rows.Count && skip > 0; r++)
        {
            if (_rows[r] == null) continue;
            int lead = 0;
            while (lead < skip && _mask[r * _length + lead] == 0) lead++;
            skip = lead;
        }
        return _rows.Any(r => r != null) ? skip : 0;
    }

    /// <summary>
    /// Copies the rows still in the batch (less <paramref name="skip"/> leading positions no row needs) and the joined
    /// rows into a new batch cache, all in one pass, each left-padded to the longest row.
    /// </summary>
    private void Rebuild(int skip)
    {
        var keep = Enumerable.Range(0, _rows.Count).Where(r => _rows[r] != null).ToArray();
        int rows = keep.Length + _joining.Count;
        if (rows == 0)
        {
            _rows.Clear();
            Replace([], [], 0);
            return;
        }
        int length = Math.Max(keep.Length > 0 ? _length - skip : 0, _joining.Count > 0 ? _joining.Max(j => j.Cache.Length) : 0);
        var newPast = new OrtValue[_graph.PastNames.Length];
        for (int i = 0; i < newPast.Length; i++)
        {
            var list = new List<CacheRows.Source>(rows);
            foreach (var r in keep) list.Add(new(_past[i], r, skip));
            foreach (var j in _joining) list.Add(new(j.Cache.Past[i], j.Index, 0));
            newPast[i] = CacheRows.Gather(list, _lead, length, _graph.CacheType);
        }
        var newMask = new long[rows * length];
        int kept = _length - skip;
        for (int k = 0; k < keep.Length; k++) Array.Copy(_mask, keep[k] * _length + skip, newMask, k * length + length - kept, kept);
        for (int k = 0; k < _joining.Count; k++)
        {
            var (_, cache, index) = _joining[k];
            Array.Copy(cache.Mask, index * cache.Length, newMask, (keep.Length + k) * length + length - cache.Length, cache.Length);
        }
        var order = keep.Select(r => _rows[r]).Concat(_joining.Select(j => j.Row)).ToList();
        Replace(newPast, newMask, length);
        _rows.Clear();
        _rows.AddRange(order);
        foreach (var j in _joining) j.Cache.Release();
        _joining.Clear();
    }

    private void Replace(OrtValue[] past, long[] mask, int length)
    {
        foreach (var p in _past.Distinct()) p.Dispose();
        _past = past;
        _mask = mask;
        _length = length;
    }

    /// <summary>Runs the graph with the batch's run options: a cancel ends the run; ORT's errors become one-line ones.</summary>
    private void Run(Action run, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _runOptions.Terminate = false;
        using (cancellationToken.Register(static o => ((RunOptions)o!).Terminate = true, _runOptions))
        {
            try
            {
                run();
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
    }

    /// <summary>
    /// Drops the rows that are done or cancelled, then runs one step for the others and returns their tokens. Rows
    /// that finish leave at the next call (or <see cref="RemoveDone"/>). Added rows must be prefilled first. Throws
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires (the batch is then unchanged).
    /// </summary>
    public IReadOnlyList<RowToken> Step(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_waiting.Count > 0) throw new InvalidOperationException("rows were added and not prefilled: call Prefill before Step");
        RemoveDone();
        long started = Stopwatch.GetTimestamp();
        MergeJoining();
        Timings.Add(BatchPhase.Join, started);
        if (_rows.Count == 0) return [];
        started = Stopwatch.GetTimestamp();
        cancellationToken.ThrowIfCancellationRequested();
        int batch = _rows.Count, total = _length + 1;
        var ids = new long[batch];
        // an empty slot runs token 0 over its own masked-out positions: its logits are never read
        for (int r = 0; r < batch; r++) ids[r] = _rows[r]?.Generator.LastToken ?? 0;
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
        // every row on the base keeps the graph's own default (as a generate without adapters runs)
        using var adapters = _rows.Any(r => r?.AdapterIndex >= 0) ? OrtValue.CreateTensorValueFromMemory(_rows.Select(r => r?.AdapterIndex ?? -1).ToArray(), [batch]) : null;
        binding.BindInput(CausalLmContract.InputIds, idsValue);
        binding.BindInput(CausalLmContract.AttentionMask, maskValue);
        if (positions != null) binding.BindInput(CausalLmContract.PositionIds, positions);
        if (_graph.KeepsLastLogits) binding.BindInput(CausalLmContract.NumLogitsToKeep, keepLast);
        if (adapters != null) binding.BindInput(CausalLmContract.AdapterIndex, adapters);
        BindAdapterStacks(binding);
        for (int i = 0; i < _past.Length; i++) binding.BindInput(_graph.PastNames[i], _past[i]);
        binding.BindOutputToDevice(CausalLmContract.Logits, OrtMemoryInfo.DefaultInstance);
        foreach (var name in _graph.PresentNames) binding.BindOutputToDevice(name, OrtMemoryInfo.DefaultInstance);
        Timings.Add(BatchPhase.Bind, started);
        started = Stopwatch.GetTimestamp();

        Run(() => _graph.Session.RunWithBinding(_runOptions, binding), cancellationToken);
        Timings.Add(BatchPhase.Decode, started);
        started = Stopwatch.GetTimestamp();

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
            if (_rows[r] is not { } row) continue;
            var token = row.Generator.ChooseFrom(logits.Slice((r * seq + seq - 1) * vocab, vocab));
            produced.Add(Finish(row, token.TokenId));
        }
        Replace(values[1..], mask, total);
        Timings.Add(BatchPhase.Choose, started);
        return produced;
    }

    /// <summary>
    /// Removes the rows that are done or cancelled (the caller disposes them). Their slots stay in the batch cache,
    /// masked out, for the next joining rows; a <see cref="Step"/> compacts them once they are over a quarter of the slots.
    /// </summary>
    public void RemoveDone()
    {
        foreach (var j in _joining.Where(j => j.Row.IsDone).ToList())
        {
            j.Cache.Release();
            _joining.Remove(j);
        }
        _waiting.RemoveAll(r => r.IsDone);
        long started = Stopwatch.GetTimestamp();
        for (int r = 0; r < _rows.Count; r++)
            if (_rows[r] is { IsDone: true })
            {
                _rows[r] = null;
                Array.Clear(_mask, r * _length, _length);
            }
        if (_rows.All(r => r == null))
        {
            _rows.Clear();
            Replace([], [], 0);
        }
        Timings.Add(BatchPhase.Leave, started);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        HoldAdapterState(null);
        foreach (var p in _past.Distinct()) p.Dispose();
        foreach (var cache in _joining.Select(j => j.Cache).Distinct())
            foreach (var p in cache.Past.Distinct()) p.Dispose();
        _runOptions.Dispose();
    }
}
