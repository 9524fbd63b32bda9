using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime;

/// <summary>
/// Sessions on the two graphs of an encoder-decoder export (<see cref="Seq2SeqContract"/>), their interface read and
/// checked once. Shared by every generator and forward on them.
/// </summary>
internal sealed class Seq2SeqGraph : IDisposable
{
    public Seq2SeqGraph(InferenceSession encoder, InferenceSession decoder, string dir)
    {
        Encoder = encoder;
        Decoder = decoder;
        const string encoderFile = Seq2SeqContract.EncoderFile, decoderFile = Seq2SeqContract.DecoderFile;
        foreach (var required in new[] { Seq2SeqContract.InputIds, Seq2SeqContract.AttentionMask })
            if (!encoder.InputMetadata.ContainsKey(required)) throw new PeftOnnxException($"{dir}: {encoderFile} has no input '{required}'");
        foreach (var required in new[] { Seq2SeqContract.InputIds, Seq2SeqContract.EncoderAttentionMask })
            if (!decoder.InputMetadata.ContainsKey(required)) throw new PeftOnnxException($"{dir}: {decoderFile} has no input '{required}'");
        while (decoder.InputMetadata.ContainsKey(Seq2SeqContract.PastSelfKey(NumLayers))) NumLayers++;
        var firstPast = Seq2SeqContract.PastSelfKey(0);
        if (NumLayers == 0) throw new PeftOnnxException($"{dir}: {decoderFile} has no {Seq2SeqContract.PastSelfKeyPattern.Replace(LayerPattern.Placeholder, "{i}")} inputs");
        var past = decoder.InputMetadata[firstPast].Dimensions;
        if (past.Length != 4 || past[1] <= 0 || past[3] <= 0)
            throw new PeftOnnxException($"{dir}: {firstPast} has shape [{string.Join(", ", past)}], expected [batch, heads, past_seq, head_dim]");
        Heads = past[1];
        HeadDim = past[3];
        CacheType = CausalLmGraph.CacheElementType(decoder.InputMetadata[firstPast], dir);
        if (!decoder.OutputMetadata.TryGetValue(Seq2SeqContract.Logits, out var logits)) throw new PeftOnnxException($"{dir}: {decoderFile} has no output '{Seq2SeqContract.Logits}'");
        VocabSize = logits.Dimensions[^1];
        PastSelfNames = new string[2 * NumLayers];
        PastCrossNames = new string[2 * NumLayers];
        PresentSelfNames = new string[2 * NumLayers];
        CrossOutputNames = new string[2 * NumLayers];
        for (int i = 0; i < NumLayers; i++)
        {
            PastSelfNames[2 * i] = Seq2SeqContract.PastSelfKey(i);
            PastSelfNames[2 * i + 1] = Seq2SeqContract.PastSelfValue(i);
            PastCrossNames[2 * i] = Seq2SeqContract.PastCrossKey(i);
            PastCrossNames[2 * i + 1] = Seq2SeqContract.PastCrossValue(i);
            PresentSelfNames[2 * i] = Seq2SeqContract.PresentSelfKey(i);
            PresentSelfNames[2 * i + 1] = Seq2SeqContract.PresentSelfValue(i);
            CrossOutputNames[2 * i] = Seq2SeqContract.PresentCrossKey(i);
            CrossOutputNames[2 * i + 1] = Seq2SeqContract.PresentCrossValue(i);
        }
        foreach (var n in CrossOutputNames)
            if (!encoder.OutputMetadata.ContainsKey(n)) throw new PeftOnnxException($"{dir}: {encoderFile} has no output '{n}'");
        foreach (var n in PastSelfNames.Concat(PastCrossNames))
            if (!decoder.InputMetadata.ContainsKey(n)) throw new PeftOnnxException($"{dir}: {decoderFile} has no input '{n}'");
        foreach (var n in PresentSelfNames)
            if (!decoder.OutputMetadata.ContainsKey(n)) throw new PeftOnnxException($"{dir}: {decoderFile} has no output '{n}'");
        CrossCacheType = CausalLmGraph.CacheElementType(decoder.InputMetadata[PastCrossNames[0]], dir);
        bool Takes(InferenceSession s) => s.InputMetadata.ContainsKey(Seq2SeqContract.AdapterIndex) || s.OverridableInitializerMetadata.ContainsKey(Seq2SeqContract.AdapterIndex);
        TakesAdapterIndex = Takes(encoder) && Takes(decoder);
    }

    /// <summary>True when both graphs take <see cref="Seq2SeqContract.AdapterIndex"/> (a multi-adapter export).</summary>
    public bool TakesAdapterIndex { get; }

    /// <summary>adapter_index [batch] as an OrtValue over <paramref name="indices"/>, after checking the graphs take it.</summary>
    public OrtValue AdapterIndexValue(long[] indices, int batch)
    {
        if (!TakesAdapterIndex) throw new PeftOnnxException($"the graphs have no '{Seq2SeqContract.AdapterIndex}' input (not a multi-adapter export)");
        if (indices.Length != batch) throw new ArgumentException($"{indices.Length} adapter indices for {batch} rows");
        return OrtValue.CreateTensorValueFromMemory(indices, [batch]);
    }

    public InferenceSession Encoder { get; }
    public InferenceSession Decoder { get; }
    public int NumLayers { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public int VocabSize { get; }
    /// <summary>Element type of the self-attention cache (float, or float16 for fp16 exports).</summary>
    public TensorElementType CacheType { get; }
    /// <summary>Element type of the cross-attention keys/values the decoder takes.</summary>
    public TensorElementType CrossCacheType { get; }
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
