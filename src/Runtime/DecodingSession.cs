using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime.Adapters;

namespace Peft.Onnx.Runtime;

/// <summary>
/// The graph-facing half of a generator: owns one OrtIoBinding on the shared session and the key/value cache as
/// OrtValues. Each step binds the previous step's present outputs as the next past inputs (no managed copy of the
/// cache); ORT allocates the outputs (on the device for CUDA, logits on the CPU).
/// </summary>
internal abstract class DecodingSession : IDisposable
{
    protected static readonly OrtMemoryInfo Cpu = OrtMemoryInfo.DefaultInstance;

    protected DecodingSession(int batch, int vocab, OrtMemoryInfo cacheMemory)
    {
        Batch = batch;
        Vocab = vocab;
        CacheMemory = cacheMemory;
    }

    public int Batch { get; }
    public int Vocab { get; }
    protected OrtMemoryInfo CacheMemory { get; }
    protected OrtValue? LogitsValue { get; set; }
    protected int LogitsSeq { get; set; }

    /// <summary>Positions the last run computed logits for (the whole step, or 1 where the graph keeps the last only).</summary>
    internal int LogitsPositions => LogitsSeq;
    private float[]? _logitsFloat;

    /// <summary>Runs the graph on the pending input (the prompt first, then the fed tokens).</summary>
    public abstract void Run(RunOptions runOptions);

    /// <summary>Queues one token per row as the next step's input.</summary>
    public abstract void Feed(ReadOnlySpan<long> next);

    /// <summary>Logits of <paramref name="row"/> at the last position of the last run.</summary>
    public ReadOnlySpan<float> Logits(int row)
    {
        ReadOnlySpan<float> all = _logitsFloat ?? LogitsValue!.GetTensorDataAsSpan<float>();
        int offset = (row * LogitsSeq + LogitsSeq - 1) * Vocab;
        return all.Slice(offset, Vocab);
    }

    /// <summary>
    /// Takes a step's outputs: the logits, and the present cache as the next step's <paramref name="past"/> (the old
    /// values are freed; the empty first cache may fill several slots, so each is freed once).
    /// </summary>
    protected void TakeStep(OrtIoBinding binding, OrtValue[] past)
    {
        var outputs = TakeOutputs(binding, 1 + past.Length);
        var previous = past.Distinct().ToArray();
        for (int i = 0; i < past.Length; i++) past[i] = outputs[1 + i];
        foreach (var p in previous) p.Dispose();
    }

    /// <summary>Takes the run's outputs: logits first, then the present cache in binding order.</summary>
    private OrtValue[] TakeOutputs(OrtIoBinding binding, int expected)
    {
        var outputs = binding.GetOutputValues();
        if (outputs.Count != expected)
        {
            outputs.Dispose();
            throw new InvalidOperationException($"the run returned {outputs.Count} outputs, expected {expected}");
        }
        var values = outputs.ToArray();
        LogitsValue?.Dispose();
        LogitsValue = values[0];
        var shape = LogitsValue.GetTensorTypeAndShape().Shape;
        if (shape.Length != 3 || shape[0] != Batch || shape[2] != Vocab)
            throw new InvalidOperationException($"logits have shape [{string.Join(", ", shape)}], expected [{Batch}, seq, {Vocab}]");
        LogitsSeq = (int)shape[1];
        // graphs keep logits in float32; an fp16 one is widened once per run
        _logitsFloat = LogitsValue.GetTensorTypeAndShape().ElementDataType == TensorElementType.Float16
            ? FloatTensors.ToFloat(LogitsValue)
            : null;
        return values;
    }

    /// <summary>A past of length 0 in the graph's cache element type (float16 for fp16 exports).</summary>
    protected static OrtValue EmptyCache(int batch, int heads, int headDim, TensorElementType type) => type == TensorElementType.Float16
        ? OrtValue.CreateTensorValueFromMemory(Array.Empty<Float16>(), [batch, heads, 0, headDim])
        : OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [batch, heads, 0, headDim]);

    public virtual void Dispose() => LogitsValue?.Dispose();
}

/// <summary>
/// Decoder-only: left-padded prompts (each with its own 0/1 mask), attention_mask grown by one column per step,
/// position_ids from the mask when the graph takes them (baked prompt / prefix exports compute them in-graph), caches in
/// the graph's element type (float16 for fp16 exports).
/// </summary>
internal sealed class CausalLmSession : DecodingSession
{
    private readonly CausalLmGraph _graph;
    private readonly OrtIoBinding _binding;
    private readonly OrtValue[] _past;
    private long[] _pendingIds;
    private int _pendingSeq;
    private long[] _mask;
    private int _total;
    private readonly OrtValue? _keepLast;
    private readonly OrtValue? _adapterIndex;
    private readonly AdapterLease? _adapters;

    /// <param name="adapterIndices">Per row the adapter of a multi-adapter export (null: every row on the base).</param>
    /// <param name="adapters">The adapter state the indices refer to (its stacks are bound when changed at run time); the session ends the lease.</param>
    public CausalLmSession(CausalLmGraph graph, int vocab, long[][] prompts, long[][] masks, long padId, OrtMemoryInfo cacheMemory, long[]? adapterIndices = null,
        AdapterLease? adapters = null)
        : base(prompts.Length, vocab, cacheMemory)
    {
        _graph = graph;
        int length = prompts.Max(p => p.Length);
        _pendingIds = new long[Batch * length];
        _mask = new long[Batch * length];
        for (int b = 0; b < Batch; b++)
        {
            int pad = length - prompts[b].Length;
            for (int t = 0; t < length; t++)
            {
                _pendingIds[b * length + t] = t < pad ? padId : prompts[b][t - pad];
                _mask[b * length + t] = t < pad ? 0 : masks[b][t - pad];
            }
        }
        _pendingSeq = length;
        _total = length;
        _binding = graph.Session.CreateIoBinding();
        var empty = EmptyCache(Batch, graph.KvHeads, graph.HeadDim, graph.CacheType);
        _past = Enumerable.Repeat(empty, graph.PastNames.Length).ToArray();
        if (graph.KeepsLastLogits)
        {
            // bound once: only the last position's logits are ever read (Logits(row)), also at the prompt's prefill
            _keepLast = OrtValue.CreateTensorValueFromMemory(new long[] { 1 }, []);
            _binding.BindInput(CausalLmContract.NumLogitsToKeep, _keepLast);
        }
        if (adapterIndices != null)
        {
            if (!graph.TakesAdapterIndex) throw new PeftOnnxException($"the graph has no '{CausalLmContract.AdapterIndex}' input (not a multi-adapter export)");
            if (adapterIndices.Length != Batch) throw new ArgumentException($"{adapterIndices.Length} adapter indices for {Batch} rows");
            // a row keeps its adapter for the whole generation: bound once
            _adapterIndex = OrtValue.CreateTensorValueFromMemory(adapterIndices, [Batch]);
            _binding.BindInput(CausalLmContract.AdapterIndex, _adapterIndex);
        }
        _adapters = adapters;
        if (adapters != null)
        {
            // the stacks of adapters added or removed at run time, bound once: the state stays this generation's to its end
            var slots = adapters.Slots;
            for (int i = 0; i < slots.InputNames.Count; i++) _binding.BindInput(slots.InputNames[i], slots.InputValues[i]);
        }
    }

    /// <summary>The adapter state this generation holds (null: a model without named adapters).</summary>
    internal AdapterSlots? AdapterState => _adapters?.Slots;

    /// <summary>The session's binding, for the continuous batch's prefill to bind the batch's adapter stacks on.</summary>
    internal OrtIoBinding Binding => _binding;

    public override void Run(RunOptions runOptions)
    {
        int seq = _pendingSeq;
        using var ids = OrtValue.CreateTensorValueFromMemory(_pendingIds, [Batch, seq]);
        using var mask = OrtValue.CreateTensorValueFromMemory(_mask, [Batch, _total]);
        using var positions = _graph.HasPositionIds
            ? OrtValue.CreateTensorValueFromMemory(CausalLmContract.PositionIdsFromMask(_mask, Batch, seq), [Batch, seq])
            : null;
        _binding.BindInput(CausalLmContract.InputIds, ids);
        _binding.BindInput(CausalLmContract.AttentionMask, mask);
        if (positions != null) _binding.BindInput(CausalLmContract.PositionIds, positions);
        for (int i = 0; i < _past.Length; i++) _binding.BindInput(_graph.PastNames[i], _past[i]);
        _binding.ClearBoundOutputs();
        _binding.BindOutputToDevice(CausalLmContract.Logits, Cpu);
        foreach (var name in _graph.PresentNames) _binding.BindOutputToDevice(name, CacheMemory);

        _graph.Session.RunWithBinding(runOptions, _binding);

        TakeStep(_binding, _past);
    }

    public override void Feed(ReadOnlySpan<long> next)
    {
        _pendingIds = next.ToArray();
        _pendingSeq = 1;
        var mask = new long[Batch * (_total + 1)];
        for (int b = 0; b < Batch; b++)
        {
            Array.Copy(_mask, b * _total, mask, b * (_total + 1), _total);
            mask[b * (_total + 1) + _total] = 1;
        }
        _mask = mask;
        _total++;
    }

    /// <summary>
    /// Hands the cache after the runs so far (past values, and the mask over their positions) to the caller, who then
    /// owns the values; the session no longer disposes them. Only for a cache on the CPU.
    /// </summary>
    internal (OrtValue[] Past, long[] Mask) DetachCache()
    {
        if (_detached) throw new InvalidOperationException("the cache was already detached");
        // a baked prompt's virtual tokens lead the cache but have no mask column
        int length = (int)_past[0].GetTensorTypeAndShape().Shape[2] - _graph.VirtualTokens;
        var mask = new long[Batch * length];
        for (int b = 0; b < Batch; b++) Array.Copy(_mask, b * _total, mask, b * length, length);
        _detached = true;
        return (_past.ToArray(), mask);
    }

    private bool _detached;

    /// <summary>The single row's prompt ids and 0/1 mask as the first run feeds them (before that run only).</summary>
    internal (long[] Ids, long[] Mask) PromptRow()
    {
        if (Batch != 1 || _pendingSeq != _total) throw new InvalidOperationException("PromptRow reads a one-row session before its first run");
        return (_pendingIds.ToArray(), _mask.ToArray());
    }

    public override void Dispose()
    {
        base.Dispose();
        if (!_detached) foreach (var p in _past.Distinct()) p.Dispose();
        _binding.Dispose();
        _keepLast?.Dispose();
        _adapterIndex?.Dispose();
        _adapters?.Dispose();
    }
}

/// <summary>
/// Encoder-decoder: the encoder runs once (right-padded prompts) and leaves the cross-attention keys/values as
/// OrtValues bound unchanged at every decoder step; the decoder starts from the decoder start token.
/// </summary>
internal sealed class Seq2SeqSession : DecodingSession
{
    private readonly Seq2SeqGraph _graph;
    private readonly OrtIoBinding _binding;
    private OrtValue[]? _cross;
    private long[]? _encoderIds;
    private readonly OrtValue[] _past;
    private readonly long[] _encoderMask;
    private readonly int _encoderLength;
    private long[] _pending;
    private readonly OrtValue? _adapterIndex;

    /// <param name="adapterIndices">Per row the adapter of a multi-adapter export, fed to the encoder and every decoder step (null: every row on the base).</param>
    public Seq2SeqSession(Seq2SeqGraph graph, int vocab, long[][] prompts, long[][] masks, long padId, long startId, OrtMemoryInfo cacheMemory,
        long[]? adapterIndices = null)
        : base(prompts.Length, vocab, cacheMemory)
    {
        _graph = graph;
        if (adapterIndices != null) _adapterIndex = graph.AdapterIndexValue(adapterIndices, Batch);
        _encoderLength = prompts.Max(p => p.Length);
        var ids = new long[Batch * _encoderLength];
        _encoderMask = new long[Batch * _encoderLength];
        for (int b = 0; b < Batch; b++)
            for (int t = 0; t < _encoderLength; t++)
            {
                bool real = t < prompts[b].Length;
                ids[b * _encoderLength + t] = real ? prompts[b][t] : padId;
                _encoderMask[b * _encoderLength + t] = real ? masks[b][t] : 0;
            }

        _encoderIds = ids;
        _binding = graph.Decoder.CreateIoBinding();
        if (_adapterIndex != null) _binding.BindInput(Seq2SeqContract.AdapterIndex, _adapterIndex);
        var empty = EmptyCache(Batch, graph.Heads, graph.HeadDim, graph.CacheType);
        _past = Enumerable.Repeat(empty, graph.PastSelfNames.Length).ToArray();
        _pending = Enumerable.Repeat(startId, Batch).ToArray();
    }

    /// <summary>The encoder, once, on the first step: its cross-attention keys/values stay where ORT put them.</summary>
    private OrtValue[] Encode(RunOptions runOptions)
    {
        using var encoderBinding = _graph.Encoder.CreateIoBinding();
        using var idsValue = OrtValue.CreateTensorValueFromMemory(_encoderIds!, [Batch, _encoderLength]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(_encoderMask, [Batch, _encoderLength]);
        encoderBinding.BindInput(Seq2SeqContract.InputIds, idsValue);
        encoderBinding.BindInput(Seq2SeqContract.AttentionMask, maskValue);
        if (_adapterIndex != null) encoderBinding.BindInput(Seq2SeqContract.AdapterIndex, _adapterIndex);
        foreach (var name in _graph.CrossOutputNames) encoderBinding.BindOutputToDevice(name, CacheMemory);
        _graph.Encoder.RunWithBinding(runOptions, encoderBinding);
        var cross = encoderBinding.GetOutputValues().ToArray();
        _encoderIds = null;
        return cross;
    }

    public override void Run(RunOptions runOptions)
    {
        _cross ??= Encode(runOptions);
        using var ids = OrtValue.CreateTensorValueFromMemory(_pending, [Batch, 1]);
        using var mask = OrtValue.CreateTensorValueFromMemory(_encoderMask, [Batch, _encoderLength]);
        _binding.BindInput(Seq2SeqContract.InputIds, ids);
        _binding.BindInput(Seq2SeqContract.EncoderAttentionMask, mask);
        for (int i = 0; i < _past.Length; i++)
        {
            _binding.BindInput(_graph.PastSelfNames[i], _past[i]);
            _binding.BindInput(_graph.PastCrossNames[i], _cross[i]);
        }
        _binding.ClearBoundOutputs();
        _binding.BindOutputToDevice(Seq2SeqContract.Logits, Cpu);
        foreach (var name in _graph.PresentSelfNames) _binding.BindOutputToDevice(name, CacheMemory);

        _graph.Decoder.RunWithBinding(runOptions, _binding);

        TakeStep(_binding, _past);
    }

    public override void Feed(ReadOnlySpan<long> next) => _pending = next.ToArray();

    public override void Dispose()
    {
        base.Dispose();
        foreach (var p in _past.Distinct()) p.Dispose();
        foreach (var c in _cross ?? []) c.Dispose();
        _binding.Dispose();
        _adapterIndex?.Dispose();
    }
}
