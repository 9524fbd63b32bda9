using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime;

/// <summary>
/// A decoder-only export (model.onnx): input_ids, attention_mask, [position_ids], past_key_values.{i}.key|value
/// -> logits, present.{i}.key|value. Tensor names are computed once; the session is shared by every generator.
/// </summary>
internal sealed class CausalLmGraph : IDisposable
{
    public const string File = "model.onnx";

    /// <summary>
    /// Written beside model.onnx by exports with a baked prompt or prefix: the same interface with the virtual tokens
    /// carried in the KV cache (present holds them from the first step on; attention_mask still covers only the real
    /// tokens), so each step runs the base model's attention. The Runtime prefers it; model.onnx keeps the cache contract
    /// ORT GenAI expects.
    /// </summary>
    public const string PrefixInCacheFile = "model_prefix_in_cache.onnx";

    /// <summary>The graph file the Runtime runs in an exported decoder-only folder.</summary>
    public static string FileIn(string dir) => System.IO.File.Exists(Path.Combine(dir, PrefixInCacheFile)) ? PrefixInCacheFile : File;
    private static readonly Regex PastKey = new(@"^past_key_values\.(\d+)\.key$", RegexOptions.CultureInvariant);

    public CausalLmGraph(InferenceSession session, string path)
    {
        Session = session;
        var inputs = session.InputMetadata;
        foreach (var required in new[] { "input_ids", "attention_mask" })
            if (!inputs.ContainsKey(required)) throw new PeftOnnxException($"{path}: the model has no input '{required}' (expected the causal-LM interface)");
        NumLayers = inputs.Keys.Count(k => PastKey.IsMatch(k));
        if (NumLayers == 0) throw new PeftOnnxException($"{path}: the model has no past_key_values.{{i}}.key inputs (expected the causal-LM interface)");
        var past = inputs["past_key_values.0.key"].Dimensions;
        if (past.Length != 4 || past[1] <= 0 || past[3] <= 0)
            throw new PeftOnnxException($"{path}: past_key_values.0.key has shape [{string.Join(", ", past)}], expected [batch, kv_heads, past_seq, head_dim]");
        KvHeads = past[1];
        HeadDim = past[3];
        CacheType = CacheElementType(inputs["past_key_values.0.key"], path);
        if (!session.OutputMetadata.TryGetValue("logits", out var logits)) throw new PeftOnnxException($"{path}: the model has no output 'logits'");
        VocabSize = logits.Dimensions[^1];
        HasPositionIds = inputs.ContainsKey("position_ids");
        // an overridable initializer (default 0: every position) in exports that have it; older exports lack it
        KeepsLastLogits = inputs.ContainsKey(NumLogitsToKeep) || session.OverridableInitializerMetadata.ContainsKey(NumLogitsToKeep);
        VirtualTokens = session.ModelMetadata.CustomMetadataMap.TryGetValue("peft.num_virtual_tokens", out var virtualText)
            && int.TryParse(virtualText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var virtualTokens) ? virtualTokens : 0;
        PastNames = new string[2 * NumLayers];
        PresentNames = new string[2 * NumLayers];
        for (int i = 0; i < NumLayers; i++)
        {
            PastNames[2 * i] = $"past_key_values.{i}.key";
            PastNames[2 * i + 1] = $"past_key_values.{i}.value";
            PresentNames[2 * i] = $"present.{i}.key";
            PresentNames[2 * i + 1] = $"present.{i}.value";
            foreach (var n in new[] { PastNames[2 * i], PastNames[2 * i + 1] })
                if (!inputs.ContainsKey(n)) throw new PeftOnnxException($"{path}: the model has no input '{n}'");
            foreach (var n in new[] { PresentNames[2 * i], PresentNames[2 * i + 1] })
                if (!session.OutputMetadata.ContainsKey(n)) throw new PeftOnnxException($"{path}: the model has no output '{n}'");
        }
    }

    public InferenceSession Session { get; }
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
    public const string NumLogitsToKeep = "num_logits_to_keep";
    /// <summary>Whether the graph takes position_ids (baked prompt/prefix exports compute positions in-graph and have none).</summary>
    public bool HasPositionIds { get; }
    /// <summary>Element type of past_key_values / present (float, or float16 for fp16 exports).</summary>
    public TensorElementType CacheType { get; }
    /// <summary>
    /// Virtual tokens baked before every prompt (prompt tuning / p-tuning / prefix exports, from the model's
    /// peft.num_virtual_tokens metadata; 0 otherwise): they take the first positions of the context.
    /// </summary>
    public int VirtualTokens { get; }
    public string[] PastNames { get; }
    public string[] PresentNames { get; }

    public void Dispose() => Session.Dispose();

    internal static TensorElementType CacheElementType(NodeMetadata meta, string where) =>
        meta.ElementDataType is TensorElementType.Float or TensorElementType.Float16
            ? meta.ElementDataType
            : throw new PeftOnnxException($"{where}: the key/value cache has element type {meta.ElementDataType}, expected float or float16");
}

/// <summary>
/// An encoder-decoder export: encoder_model.onnx (input_ids, attention_mask -> last_hidden_state,
/// present.{i}.encoder.key|value) and decoder_model.onnx (input_ids, encoder_attention_mask,
/// past_key_values.{i}.decoder|encoder.key|value -> logits, present.{i}.decoder.key|value).
/// </summary>
internal sealed class Seq2SeqGraph : IDisposable
{
    public const string EncoderFile = "encoder_model.onnx";
    public const string DecoderFile = "decoder_model.onnx";
    private static readonly Regex PastSelfKey = new(@"^past_key_values\.(\d+)\.decoder\.key$", RegexOptions.CultureInvariant);

    public Seq2SeqGraph(InferenceSession encoder, InferenceSession decoder, string dir)
    {
        Encoder = encoder;
        Decoder = decoder;
        foreach (var required in new[] { "input_ids", "attention_mask" })
            if (!encoder.InputMetadata.ContainsKey(required)) throw new PeftOnnxException($"{dir}: {EncoderFile} has no input '{required}'");
        foreach (var required in new[] { "input_ids", "encoder_attention_mask" })
            if (!decoder.InputMetadata.ContainsKey(required)) throw new PeftOnnxException($"{dir}: {DecoderFile} has no input '{required}'");
        NumLayers = decoder.InputMetadata.Keys.Count(k => PastSelfKey.IsMatch(k));
        if (NumLayers == 0) throw new PeftOnnxException($"{dir}: {DecoderFile} has no past_key_values.{{i}}.decoder.key inputs");
        var past = decoder.InputMetadata["past_key_values.0.decoder.key"].Dimensions;
        if (past.Length != 4 || past[1] <= 0 || past[3] <= 0)
            throw new PeftOnnxException($"{dir}: past_key_values.0.decoder.key has shape [{string.Join(", ", past)}], expected [batch, heads, past_seq, head_dim]");
        Heads = past[1];
        HeadDim = past[3];
        CacheType = CausalLmGraph.CacheElementType(decoder.InputMetadata["past_key_values.0.decoder.key"], dir);
        if (!decoder.OutputMetadata.TryGetValue("logits", out var logits)) throw new PeftOnnxException($"{dir}: {DecoderFile} has no output 'logits'");
        VocabSize = logits.Dimensions[^1];
        PastSelfNames = new string[2 * NumLayers];
        PastCrossNames = new string[2 * NumLayers];
        PresentSelfNames = new string[2 * NumLayers];
        CrossOutputNames = new string[2 * NumLayers];
        for (int i = 0; i < NumLayers; i++)
        {
            PastSelfNames[2 * i] = $"past_key_values.{i}.decoder.key";
            PastSelfNames[2 * i + 1] = $"past_key_values.{i}.decoder.value";
            PastCrossNames[2 * i] = $"past_key_values.{i}.encoder.key";
            PastCrossNames[2 * i + 1] = $"past_key_values.{i}.encoder.value";
            PresentSelfNames[2 * i] = $"present.{i}.decoder.key";
            PresentSelfNames[2 * i + 1] = $"present.{i}.decoder.value";
            CrossOutputNames[2 * i] = $"present.{i}.encoder.key";
            CrossOutputNames[2 * i + 1] = $"present.{i}.encoder.value";
        }
        foreach (var n in CrossOutputNames)
            if (!encoder.OutputMetadata.ContainsKey(n)) throw new PeftOnnxException($"{dir}: {EncoderFile} has no output '{n}'");
        foreach (var n in PastSelfNames.Concat(PastCrossNames))
            if (!decoder.InputMetadata.ContainsKey(n)) throw new PeftOnnxException($"{dir}: {DecoderFile} has no input '{n}'");
        foreach (var n in PresentSelfNames)
            if (!decoder.OutputMetadata.ContainsKey(n)) throw new PeftOnnxException($"{dir}: {DecoderFile} has no output '{n}'");
    }

    public InferenceSession Encoder { get; }
    public InferenceSession Decoder { get; }
    public int NumLayers { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public int VocabSize { get; }
    /// <summary>Element type of the self-attention cache (float, or float16 for fp16 exports).</summary>
    public TensorElementType CacheType { get; }
    public string[] PastSelfNames { get; }
    public string[] PastCrossNames { get; }
    public string[] PresentSelfNames { get; }
    /// <summary>The encoder's cross-attention outputs, in the order of <see cref="PastCrossNames"/>.</summary>
    public string[] CrossOutputNames { get; }

    public void Dispose()
    {
        Encoder.Dispose();
        Decoder.Dispose();
    }
}
