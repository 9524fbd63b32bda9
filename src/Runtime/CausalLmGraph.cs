using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime;

/// <summary>
/// A session on a decoder-only graph (<see cref="CausalLmContract"/>), its interface read and checked once: layers,
/// cache shape and element type, which optional inputs it takes. Shared by every generator and forward on it.
/// </summary>
internal sealed class CausalLmGraph : IDisposable
{
    /// <summary>The graph file the Runtime runs in an exported decoder-only folder (the prefix-in-cache one where written).</summary>
    public static string FileIn(string dir) =>
        System.IO.File.Exists(Path.Combine(dir, CausalLmContract.PrefixInCacheFile)) ? CausalLmContract.PrefixInCacheFile : CausalLmContract.ModelFile;

    /// <param name="acceptEmbeddings">
    /// Also take a graph with inputs_embeds in place of input_ids (the exporter's soft-prompt scratch graph; see
    /// <see cref="TakesEmbeddings"/>). Generation never does.
    /// </param>
    public CausalLmGraph(InferenceSession session, string path, bool acceptEmbeddings = false)
    {
        Session = session;
        var inputs = session.InputMetadata;
        TakesEmbeddings = acceptEmbeddings && !inputs.ContainsKey(CausalLmContract.InputIds) && inputs.ContainsKey(CausalLmContract.InputsEmbeds);
        foreach (var required in new[] { TakesEmbeddings ? CausalLmContract.InputsEmbeds : CausalLmContract.InputIds, CausalLmContract.AttentionMask })
            if (!inputs.ContainsKey(required)) throw new PeftOnnxException($"{path}: the model has no input '{required}' (expected the causal-LM interface)");
        while (inputs.ContainsKey(CausalLmContract.PastKey(NumLayers))) NumLayers++;
        var firstPast = CausalLmContract.PastKey(0);
        if (NumLayers == 0) throw new PeftOnnxException($"{path}: the model has no {CausalLmContract.PastKeyPattern.Replace(LayerPattern.Placeholder, "{i}")} inputs (expected the causal-LM interface)");
        var past = inputs[firstPast].Dimensions;
        if (past.Length != 4 || past[1] <= 0 || past[3] <= 0)
            throw new PeftOnnxException($"{path}: {firstPast} has shape [{string.Join(", ", past)}], expected [batch, kv_heads, past_seq, head_dim]");
        KvHeads = past[1];
        HeadDim = past[3];
        CacheType = CacheElementType(inputs[firstPast], path);
        if (!session.OutputMetadata.TryGetValue(CausalLmContract.Logits, out var logits)) throw new PeftOnnxException($"{path}: the model has no output '{CausalLmContract.Logits}'");
        VocabSize = logits.Dimensions[^1];
        HasPositionIds = inputs.ContainsKey(CausalLmContract.PositionIds);
        // an overridable initializer (one -1: every row on the base) in multi-adapter exports
        TakesAdapterIndex = inputs.ContainsKey(CausalLmContract.AdapterIndex) || session.OverridableInitializerMetadata.ContainsKey(CausalLmContract.AdapterIndex);
        // an overridable initializer (default 0: every position) in exports that have it; older exports lack it
        KeepsLastLogits = inputs.ContainsKey(CausalLmContract.NumLogitsToKeep) || session.OverridableInitializerMetadata.ContainsKey(CausalLmContract.NumLogitsToKeep);
        VirtualTokens = session.ModelMetadata.CustomMetadataMap.TryGetValue(OnnxMetadataKeys.NumVirtualTokens, out var virtualText)
            && int.TryParse(virtualText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var virtualTokens) ? virtualTokens : 0;
        PastNames = new string[2 * NumLayers];
        PresentNames = new string[2 * NumLayers];
        for (int i = 0; i < NumLayers; i++)
        {
            PastNames[2 * i] = CausalLmContract.PastKey(i);
            PastNames[2 * i + 1] = CausalLmContract.PastValue(i);
            PresentNames[2 * i] = CausalLmContract.PresentKey(i);
            PresentNames[2 * i + 1] = CausalLmContract.PresentValue(i);
            foreach (var n in new[] { PastNames[2 * i], PastNames[2 * i + 1] })
                if (!inputs.ContainsKey(n)) throw new PeftOnnxException($"{path}: the model has no input '{n}'");
            foreach (var n in new[] { PresentNames[2 * i], PresentNames[2 * i + 1] })
                if (!session.OutputMetadata.ContainsKey(n)) throw new PeftOnnxException($"{path}: the model has no output '{n}'");
        }
    }

    public InferenceSession Session { get; }

    /// <summary>Whether the graph takes inputs_embeds instead of input_ids.</summary>
    public bool TakesEmbeddings { get; }
    public int NumLayers { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    /// <summary>From the logits output (&lt;= 0 when the graph leaves it symbolic).</summary>
    public int VocabSize { get; }
    /// <summary>
    /// Whether the graph takes num_logits_to_keep: fed 1, the prefill computes logits for the last position only
    /// (the output head skips every other prompt token).
    /// </summary>
    public bool KeepsLastLogits { get; }
    /// <summary>Whether the graph takes position_ids (baked prompt/prefix exports compute positions in-graph and have none).</summary>
    public bool HasPositionIds { get; }
    /// <summary>Whether the graph takes adapter_index [batch] (a multi-adapter export).</summary>
    public bool TakesAdapterIndex { get; }
    /// <summary>Element type of past_key_values / present (float, or float16 for fp16 exports).</summary>
    public TensorElementType CacheType { get; }
    /// <summary>
    /// Virtual tokens baked before every prompt (prompt tuning / p-tuning / prefix exports, from the model's
    /// <see cref="OnnxMetadataKeys.NumVirtualTokens"/> metadata; 0 otherwise): they take the first positions of the context.
    /// </summary>
    public int VirtualTokens { get; }
    /// <summary>past_key_values.{i}.key, .value per layer, in that order.</summary>
    public string[] PastNames { get; }
    /// <summary>present.{i}.key, .value per layer, in the order of <see cref="PastNames"/>.</summary>
    public string[] PresentNames { get; }

    public void Dispose() => Session.Dispose();

    internal static TensorElementType CacheElementType(NodeMetadata meta, string where) =>
        meta.ElementDataType is TensorElementType.Float or TensorElementType.Float16
            ? meta.ElementDataType
            : throw new PeftOnnxException($"{where}: the key/value cache has element type {meta.ElementDataType}, expected float or float16");
}
