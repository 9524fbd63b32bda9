using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;

namespace Peft.Onnx.Trainer.Inference;

/// <summary>
/// `forward --base`: loads the model (and adapter) a request names and runs it in eval mode on one batch. Every check
/// that needs only configs runs before weights are read; what it chose and found goes to the log.
/// </summary>
public static class TorchForward
{
    /// <summary>Reads the batch (input_ids, attention_mask [, labels]) from a safetensors file and runs it.</summary>
    public static ForwardResult Run(TorchForwardRequest request, string inputsPath, TextWriter log)
    {
        CheckRequest(request);
        return Run(request, ForwardBatch.Read(inputsPath), inputsPath, log);
    }

    /// <param name="inputsPath">where <paramref name="batch"/> came from, named in errors</param>
    public static ForwardResult Run(TorchForwardRequest request, ForwardBatch batch, string inputsPath, TextWriter log)
    {
        CheckRequest(request);
        // A learned position table (GPT-2, OPT) has no row beyond its length: refused before weights are read.
        var virtualTokens = request.AdapterDir is null ? 0 : AdapterConfig.Load(request.AdapterDir).VirtualTokensBeforeInput;
        ModelConfig.Load(request.BaseDir).PositionTable?.Check(batch.Shape[1], virtualTokens, inputsPath);
        TorchDevice.Resolve(request.Device, log.WriteLine);
        if (request.AdapterDir is null)
        {
            using var model = ModelLoader.Load(request.BaseDir, out var report);
            Warnings.Unexpected(report, log);
            Check(batch, model, inputsPath);
            return ForwardPass.Run(model, batch);
        }
        using var adapted = PeftModelSource.FromAdapter(request.BaseDir, request.AdapterDir, out var adaptedReport, inferenceMode: true);
        Warnings.Unexpected(adaptedReport, log);
        Check(batch, adapted.Base, inputsPath);
        if (!request.Merge) return ForwardPass.Run(adapted, batch);
        var merged = AdapterMerge.MergeAndUnload(adapted);
        log.WriteLine($"merged the {adapted.Config.PeftType} adapter into the base weights");
        return ForwardPass.Run(merged, batch);
    }

    private static void CheckRequest(TorchForwardRequest request)
    {
        if (request.Merge && request.AdapterDir is null)
            throw new PeftOnnxException("forward: --merge needs --adapter (the adapter to merge into the base weights)");
    }

    private static void Check(ForwardBatch batch, PretrainedModel model, string inputsPath)
    {
        batch.CheckVocabulary(model.Architecture.Config.Dimensions.VocabSize, inputsPath);
        batch.CheckLabels(model, inputsPath);
    }
}
