using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime;

/// <summary>
/// `forward --onnx`: an exported folder run with ONNX Runtime on one batch. Decoder-only: position_ids from the mask
/// (the graphs' contract); encoder-decoder: the decoder input is labels shifted right with the decoder start token
/// (-100 -> pad), so labels are required. Logits are float32 ([B, T, V] or [B, L, V]); with labels, the loss is the
/// mean cross-entropy over labels != -100 (causal: token t predicts label t + 1; with a baked soft prompt, as PEFT
/// computes it, the last virtual token also predicts label 0: <see cref="VirtualTokenLogits"/>).
/// </summary>
public static class OnnxForward
{
    /// <summary>
    /// Reads the batch (input_ids, attention_mask [, labels]) from a safetensors file and runs it. <see cref="Device.Auto"/>
    /// runs on the CPU and says so in <paramref name="log"/>.
    /// </summary>
    public static ForwardResult Run(string onnxDir, string inputsPath, Device device, TextWriter log) => Run(onnxDir, inputsPath, device, log, adapter: null);

    /// <summary>As above, every row with <paramref name="adapter"/> of a multi-adapter export (null = the base).</summary>
    public static ForwardResult Run(string onnxDir, string inputsPath, Device device, TextWriter log, string? adapter)
    {
        CheckFolder(onnxDir);
        if (device == Device.Auto) log.WriteLine("device: cpu (ONNX Runtime CPU provider)");
        return Run(onnxDir, ForwardBatch.Read(inputsPath), inputsPath, device == Device.Cuda ? ForwardSessionKind.Cuda : ForwardSessionKind.Cpu, adapter);
    }

    /// <param name="inputsPath">where <paramref name="batch"/> came from, named in errors</param>
    /// <param name="adapter">the adapter of a multi-adapter export every row runs with (null = the base)</param>
    public static ForwardResult Run(string onnxDir, ForwardBatch batch, string inputsPath, ForwardSessionKind kind = ForwardSessionKind.Cpu, string? adapter = null)
    {
        CheckFolder(onnxDir);
        long[]? adapterIndices = null;
        int adapterVirtualTokens = 0;
        if (adapter != null)
        {
            var manifest = AdapterManifest.Load(onnxDir)
                ?? throw new PeftOnnxException($"unknown adapter '{adapter}' ({onnxDir} holds no named adapters: export with --adapter NAME=DIR)");
            long index = manifest.IndexOf(adapter);
            adapterIndices = Enumerable.Repeat(index, (int)batch.Shape[0]).ToArray();
            adapterVirtualTokens = manifest.Adapters[(int)index].VirtualTokens;
        }
        using var model = LogitsForward.Open(onnxDir, kind);
        var config = ModelConfig.Load(onnxDir);
        config.PositionTable?.Check(batch.Shape[1], model.VirtualTokens + adapterVirtualTokens, inputsPath);
        int vocab = model.VocabSize;
        batch.CheckVocabulary(vocab, inputsPath);
        int size = (int)batch.Shape[0];
        if (model.IsEncoderDecoder)
        {
            var labels = batch.Labels ?? throw new PeftOnnxException($"{inputsPath}: an encoder-decoder export needs 'labels' [batch, target_len] (the decoder input is labels shifted right)");
            var decoderIds = Seq2SeqForward.ShiftRight(labels, size, config.DecoderStartId, config.PadTokenId ?? 0);
            var logits = model.Seq2Seq(batch.InputIds, batch.AttentionMask, decoderIds, size, adapterIndices);
            return new ForwardResult(logits, [size, batch.LabelShape![1], vocab], (float)MeanCrossEntropy.Of(logits, vocab, labels, shift: false, size));
        }
        batch.CheckLabelsLikeInputs(inputsPath, "a decoder-only export");
        var causal = model.Causal(batch.InputIds, batch.AttentionMask, size, adapterIndices);
        // a soft prompt's last virtual token scores the first label in PEFT's loss (its logits are stored by the export)
        float? loss = batch.Labels is { } causalLabels
            ? (float)MeanCrossEntropy.Of(causal, vocab, causalLabels, shift: true, size, adapter == null ? VirtualTokenLogits.Load(onnxDir, vocab) : null)
            : null;
        return new ForwardResult(causal, [size, batch.Shape[1], vocab], loss);
    }

    private static void CheckFolder(string onnxDir)
    {
        if (!Directory.Exists(onnxDir)) throw new PeftOnnxException($"forward: --onnx {onnxDir}: folder not found");
    }
}
