using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime;

/// <summary>
/// Whole forwards of a decoder-only graph (<see cref="CausalLmContract"/>) with the cache copied in and out as float32
/// arrays: `forward --onnx`, compare, the export check and tests. Generation keeps the cache in OrtValues instead
/// (<see cref="OnnxModel"/>); both run the same <see cref="CausalLmGraph"/>. fp32 and fp16 exports alike.
/// </summary>
public sealed class CausalLmForward : IDisposable
{
    private readonly CausalLmGraph _graph;

    private CausalLmForward(CausalLmGraph graph)
    {
        _graph = graph;
        if (graph.VocabSize <= 0) throw new PeftOnnxException($"output '{CausalLmContract.Logits}' has no fixed vocabulary dimension");
    }

    /// <summary>A session of <paramref name="kind"/> on one decoder-only model file (model.onnx or the prefix-in-cache graph).</summary>
    public static CausalLmForward Open(string modelPath, ForwardSessionKind kind = ForwardSessionKind.Cpu) =>
        Open(modelPath, kind, acceptEmbeddings: false);

    /// <summary>
    /// A CPU session on a graph that takes inputs_embeds in place of input_ids (the exporter's scratch graph for a soft
    /// prompt's keys/values), run with <see cref="RunEmbeddings"/>.
    /// </summary>
    public static CausalLmForward OpenWithEmbeddings(string modelPath) => Open(modelPath, ForwardSessionKind.Cpu, acceptEmbeddings: true);

    private static CausalLmForward Open(string modelPath, ForwardSessionKind kind, bool acceptEmbeddings)
    {
        var session = OrtSessions.Open(modelPath, kind);
        try
        {
            return new CausalLmForward(new CausalLmGraph(session, modelPath, acceptEmbeddings));
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    public int NumLayers => _graph.NumLayers;

    /// <summary>Key/value heads of the cache (num_key_value_heads).</summary>
    public int NumHeads => _graph.KvHeads;
    public int HeadDim => _graph.HeadDim;
    public int VocabSize => _graph.VocabSize;

    /// <summary>True when the graph takes position_ids (GPT-2, LLaMA); Run then feeds them from the mask unless given.</summary>
    public bool HasPositionIds => _graph.HasPositionIds;

    /// <summary>Element type of past_key_values / present (float, or float16 for fp16 exports; converted at the boundary).</summary>
    public TensorElementType CacheType => _graph.CacheType;

    /// <summary>Virtual tokens of a baked soft prompt or prefix (<see cref="OnnxMetadataKeys.NumVirtualTokens"/>), else 0.</summary>
    public int VirtualTokens => _graph.VirtualTokens;

    /// <summary>An empty cache (past length 0) for prefill.</summary>
    public KeyValueCache EmptyCache(int batch) => KeyValueCache.Empty(batch, NumLayers);

    /// <summary>
    /// One forward: <paramref name="inputIds"/> [batch, seq], <paramref name="attentionMask"/> [batch, past + seq],
    /// <paramref name="past"/> the cache from the previous step (null = empty).
    /// </summary>
    public CausalLmStep Run(long[] inputIds, long[] attentionMask, int batch, KeyValueCache? past = null) =>
        Run(inputIds, attentionMask, batch, past, positionIds: null);

    /// <summary>
    /// One forward with explicit <paramref name="positionIds"/> [batch, seq] for graphs that take them; null feeds
    /// <see cref="CausalLmContract.PositionIdsFromMask"/> (the generation contract). Ignored by graphs without the input.
    /// </summary>
    public CausalLmStep Run(long[] inputIds, long[] attentionMask, int batch, KeyValueCache? past, long[]? positionIds) =>
        Run(inputIds, attentionMask, batch, past, positionIds, adapterIndices: null);

    /// <summary>
    /// As above, each row with its adapter of a multi-adapter export: <paramref name="adapterIndices"/> [batch], the
    /// indices of <see cref="AdapterManifest"/> (-1 = the base); null runs every row on the base.
    /// </summary>
    public CausalLmStep Run(long[] inputIds, long[] attentionMask, int batch, KeyValueCache? past, long[]? positionIds, long[]? adapterIndices)
    {
        int seq = IdsLength(inputIds, batch);
        return Run(() => OrtValue.CreateTensorValueFromMemory(inputIds, [batch, seq]), seq, attentionMask, batch, past, positionIds, readPresent: true, adapterIndices);
    }

    /// <summary>Logits [batch, seq, vocab] of a prefill with an empty cache (the present cache is not copied out).</summary>
    public float[] Logits(long[] inputIds, long[] attentionMask, int batch) => Logits(inputIds, attentionMask, batch, adapterIndices: null);

    /// <summary>As above, each row with its adapter (see <see cref="Run(long[], long[], int, KeyValueCache, long[], long[])"/>).</summary>
    public float[] Logits(long[] inputIds, long[] attentionMask, int batch, long[]? adapterIndices)
    {
        int seq = IdsLength(inputIds, batch);
        return Run(() => OrtValue.CreateTensorValueFromMemory(inputIds, [batch, seq]), seq, attentionMask, batch, null, null, readPresent: false, adapterIndices).Logits;
    }

    /// <summary>Whether the graph takes adapter_index (a multi-adapter export).</summary>
    public bool TakesAdapterIndex => _graph.TakesAdapterIndex;

    /// <summary>
    /// One forward of a graph opened with <see cref="OpenWithEmbeddings"/> on <paramref name="inputsEmbeds"/>
    /// [batch, seq, <paramref name="width"/>]; otherwise as <see cref="Run(long[], long[], int, KeyValueCache, long[])"/>.
    /// </summary>
    public CausalLmStep RunEmbeddings(float[] inputsEmbeds, int width, long[] attentionMask, int batch, KeyValueCache? past = null, long[]? positionIds = null)
    {
        if (!_graph.TakesEmbeddings) throw new InvalidOperationException($"the graph takes {CausalLmContract.InputIds}, not {CausalLmContract.InputsEmbeds}");
        if (width <= 0 || batch <= 0 || inputsEmbeds.Length % (batch * width) != 0) throw new ArgumentException($"inputs_embeds of {inputsEmbeds.Length} values is not [{batch}, seq, {width}]");
        int seq = inputsEmbeds.Length / (batch * width);
        return Run(() => OrtValue.CreateTensorValueFromMemory(inputsEmbeds, [batch, seq, width]), seq, attentionMask, batch, past, positionIds, readPresent: true);
    }

    private static int IdsLength(long[] inputIds, int batch)
    {
        if (batch <= 0 || inputIds.Length % batch != 0) throw new ArgumentException("input_ids length is not a multiple of batch");
        return inputIds.Length / batch;
    }

    /// <summary>Runs the graph on the token input <paramref name="tokens"/> makes (input_ids or inputs_embeds, <paramref name="seq"/> long).</summary>
    private CausalLmStep Run(Func<OrtValue> tokens, int seq, long[] attentionMask, int batch, KeyValueCache? past, long[]? positionIds, bool readPresent,
        long[]? adapterIndices = null)
    {
        past ??= EmptyCache(batch);
        if (past.Batch != batch) throw new ArgumentException($"cache batch {past.Batch} != {batch}");
        // attention_mask covers the real tokens; a baked prompt's cache also holds its virtual tokens (from the first step on)
        if (attentionMask.Length % batch != 0 || attentionMask.Length / batch < seq) throw new ArgumentException($"attention_mask must be [{batch}, >= {seq}]");
        int total = attentionMask.Length / batch;

        var names = new List<string> { _graph.TakesEmbeddings ? CausalLmContract.InputsEmbeds : CausalLmContract.InputIds, CausalLmContract.AttentionMask };
        var values = new List<OrtValue>();
        var outputNames = new List<string> { CausalLmContract.Logits };
        try
        {
            values.Add(tokens());
            values.Add(OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, total]));
            if (HasPositionIds)
            {
                positionIds ??= CausalLmContract.PositionIdsFromMask(attentionMask, batch, seq);
                if (positionIds.Length != batch * seq) throw new ArgumentException($"position_ids must be [{batch}, {seq}]");
                names.Add(CausalLmContract.PositionIds);
                values.Add(OrtValue.CreateTensorValueFromMemory(positionIds, [batch, seq]));
            }
            if (adapterIndices != null)
            {
                if (!_graph.TakesAdapterIndex) throw new PeftOnnxException($"the graph has no '{CausalLmContract.AdapterIndex}' input (not a multi-adapter export)");
                if (adapterIndices.Length != batch) throw new ArgumentException($"adapter_index must be [{batch}]");
                names.Add(CausalLmContract.AdapterIndex);
                values.Add(OrtValue.CreateTensorValueFromMemory(adapterIndices, [batch]));
            }
            long[] pastShape = [batch, NumHeads, past.Length, HeadDim];
            for (int i = 0; i < NumLayers; i++)
            {
                names.Add(_graph.PastNames[2 * i]);
                values.Add(FloatTensors.Tensor(past.Keys[i], pastShape, CacheType));
                names.Add(_graph.PastNames[2 * i + 1]);
                values.Add(FloatTensors.Tensor(past.Values[i], pastShape, CacheType));
                if (!readPresent) continue;
                outputNames.Add(_graph.PresentNames[2 * i]);
                outputNames.Add(_graph.PresentNames[2 * i + 1]);
            }
            using var runOptions = new RunOptions();
            using var outputs = _graph.Session.Run(runOptions, names, values, outputNames);
            var logits = outputs[0];
            var logitsShape = logits.GetTensorTypeAndShape().Shape;
            if (!readPresent) return new CausalLmStep(FloatTensors.ToFloat(logits), logitsShape, EmptyCache(batch));
            var keys = new float[NumLayers][];
            var vals = new float[NumLayers][];
            long presentLength = outputs[1].GetTensorTypeAndShape().Shape[2];
            if (past.Length > 0 ? presentLength != past.Length + seq : presentLength < seq)
                throw new PeftOnnxException($"output '{_graph.PresentNames[0]}' holds {presentLength} positions after a past of {past.Length} and {seq} new tokens");
            long[] presentShape = [batch, NumHeads, presentLength, HeadDim];
            for (int i = 0; i < NumLayers; i++)
            {
                keys[i] = FloatTensors.Read(outputs[1 + 2 * i], presentShape, _graph.PresentNames[2 * i]);
                vals[i] = FloatTensors.Read(outputs[2 + 2 * i], presentShape, _graph.PresentNames[2 * i + 1]);
            }
            return new CausalLmStep(FloatTensors.ToFloat(logits), logitsShape, new KeyValueCache(batch, (int)presentLength, keys, vals));
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    public void Dispose() => _graph.Dispose();
}
