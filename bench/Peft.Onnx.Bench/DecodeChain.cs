using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Bench;

/// <summary>
/// A generation's runs as the Runtime makes them, on any decoder-only session: one IO binding, a prefill of the prompt
/// over an empty cache, then one-token steps that bind the previous step's present outputs (left where ONNX Runtime
/// allocated them) as the next past inputs. Token ids are constant: only sizes matter to a profile.
/// </summary>
public sealed class DecodeChain : IDisposable
{
    private readonly InferenceSession _session;
    private readonly OrtIoBinding _binding;
    private readonly int _batch;
    private readonly string[] _pastNames;
    private readonly string[] _presentNames;
    private readonly OrtValue[] _past;
    private readonly List<OrtValue> _held = [];
    private OrtValue? _logits;
    private int _total;

    /// <param name="adapterIndex">a multi-adapter graph's adapter_index, one per row (null: every row on the base)</param>
    public DecodeChain(InferenceSession session, int batch, long[]? adapterIndex = null)
    {
        _session = session;
        _batch = batch;
        _binding = session.CreateIoBinding();
        var inputs = session.InputMetadata;
        int layers = 0;
        while (inputs.ContainsKey(CausalLmContract.PastKey(layers))) layers++;
        _pastNames = Enumerable.Range(0, layers).SelectMany(i => new[] { CausalLmContract.PastKey(i), CausalLmContract.PastValue(i) }).ToArray();
        _presentNames = Enumerable.Range(0, layers).SelectMany(i => new[] { CausalLmContract.PresentKey(i), CausalLmContract.PresentValue(i) }).ToArray();
        _past = _pastNames.Select(n => Empty(inputs[n])).ToArray();
        if (inputs.ContainsKey(CausalLmContract.NumLogitsToKeep) || session.OverridableInitializerMetadata.ContainsKey(CausalLmContract.NumLogitsToKeep))
            _binding.BindInput(CausalLmContract.NumLogitsToKeep, Hold(OrtValue.CreateTensorValueFromMemory(new long[] { 1 }, [])));
        if (inputs.ContainsKey(CausalLmContract.AdapterIndex))
            _binding.BindInput(CausalLmContract.AdapterIndex, Hold(OrtValue.CreateTensorValueFromMemory(adapterIndex ?? Enumerable.Repeat(-1L, batch).ToArray(), [batch])));
        // any other input gets zeros of its shape, free dimensions at batch; stacked adapter tensors are overridable
        // initializers whose defaults are the export's adapters
        var known = new HashSet<string>(_pastNames) { CausalLmContract.InputIds, CausalLmContract.AttentionMask, CausalLmContract.PositionIds, CausalLmContract.NumLogitsToKeep, CausalLmContract.AdapterIndex };
        foreach (var (name, meta) in inputs.Where(i => !known.Contains(i.Key) && AdapterStackNames.Parse(i.Key) == null && PrefixStackNames.Parse(i.Key) == null))
        {
            var dims = meta.Dimensions.Select(d => d >= 0 ? (long)d : batch).ToArray();
            long count = dims.Aggregate(1L, (a, d) => a * d);
            _binding.BindInput(name, Hold(meta.ElementDataType == TensorElementType.Int64
                ? OrtValue.CreateTensorValueFromMemory(new long[count], dims)
                : OrtValue.CreateTensorValueFromMemory(new float[count], dims)));
        }
    }

    /// <summary>Cached positions now (the prompt's after <see cref="Prefill"/>, one more after each <see cref="Step"/>).</summary>
    public int Length => (int)_past[0].GetTensorTypeAndShape().Shape[2];

    /// <summary>Bytes of the whole cache now (what a step's Concat of past and new copies).</summary>
    public long CacheBytes => _past.Sum(p =>
    {
        var info = p.GetTensorTypeAndShape();
        return info.ElementCount * (info.ElementDataType == TensorElementType.Float16 ? 2L : 4L);
    });

    public void Prefill(int promptLength, RunOptions runOptions) => Run(promptLength, runOptions);

    public void Step(RunOptions runOptions) => Run(1, runOptions);

    private void Run(int seq, RunOptions runOptions)
    {
        _total += seq;
        using var ids = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(5L, _batch * seq).ToArray(), [_batch, seq]);
        using var mask = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, _batch * _total).ToArray(), [_batch, _total]);
        using var positions = OrtValue.CreateTensorValueFromMemory(
            Enumerable.Range(0, _batch * seq).Select(i => (long)(_total - seq + i % seq)).ToArray(), [_batch, seq]);
        _binding.BindInput(CausalLmContract.InputIds, ids);
        _binding.BindInput(CausalLmContract.AttentionMask, mask);
        if (_session.InputMetadata.ContainsKey(CausalLmContract.PositionIds)) _binding.BindInput(CausalLmContract.PositionIds, positions);
        for (int i = 0; i < _past.Length; i++) _binding.BindInput(_pastNames[i], _past[i]);
        _binding.ClearBoundOutputs();
        _binding.BindOutputToDevice(CausalLmContract.Logits, OrtMemoryInfo.DefaultInstance);
        foreach (var name in _presentNames) _binding.BindOutputToDevice(name, OrtMemoryInfo.DefaultInstance);
        _session.RunWithBinding(runOptions, _binding);
        var outputs = _binding.GetOutputValues().ToArray();
        _logits?.Dispose();
        _logits = outputs[0];
        foreach (var p in _past.Distinct().ToList()) p.Dispose();
        for (int i = 0; i < _past.Length; i++) _past[i] = outputs[1 + i];
    }

    private OrtValue Hold(OrtValue value)
    {
        _held.Add(value);
        return value;
    }

    private OrtValue Empty(NodeMetadata meta)
    {
        long[] shape = [_batch, meta.Dimensions[1], 0, meta.Dimensions[3]];
        return meta.ElementDataType == TensorElementType.Float16
            ? OrtValue.CreateTensorValueFromMemory(Array.Empty<Float16>(), shape)
            : OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), shape);
    }

    public void Dispose()
    {
        foreach (var p in _past.Distinct()) p.Dispose();
        _logits?.Dispose();
        foreach (var h in _held) h.Dispose();
        _binding.Dispose();
    }
}
