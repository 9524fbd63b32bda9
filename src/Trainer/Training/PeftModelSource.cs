using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;

namespace Peft.Onnx.Trainer.Training;

/// <summary>
/// Where a training run's adapter comes from: a saved adapter folder (PeftModel.from_pretrained(..., is_trainable=True))
/// or a fresh adapter from an adapter_config.json (torch.manual_seed(seed); get_peft_model). Both check first that
/// the adapter's task fits the base model, so a mismatch is a one-line error rather than a failure deep in a forward.
/// </summary>
public static class PeftModelSource
{
    /// <summary>
    /// Base + saved adapter: ready to train further (inference_mode off, as is_trainable=True), or as saved for
    /// inference (<paramref name="inferenceMode"/>, as PeftModel.from_pretrained's default).
    /// </summary>
    public static PeftModel FromAdapter(string baseDir, string adapterDir, out LoadReport report, bool inferenceMode = false)
    {
        var config = AdapterConfig.Load(adapterDir) with { InferenceMode = inferenceMode };
        // The adapter against the base's config.json, before libtorch allocates anything for either: a config whose
        // sizes the file does not bear out (r, num_virtual_tokens, encoder_hidden_size) fails here in a moment.
        var architecture = Architecture.For(ModelConfig.Load(baseDir));
        CheckTask(config, architecture);
        AdapterFit.Check(config, architecture, adapterDir);
        var baseModel = ModelLoader.Load(baseDir, out report);
        try
        {
            var model = PeftModel.Create(baseModel, config);
            try { model.LoadAdapter(adapterDir); }
            catch { model.Tuner.Dispose(); throw; }
            return model;
        }
        catch { baseModel.Dispose(); throw; }
    }

    /// <summary>Base + a new adapter initialised as PEFT does, with torch seeded right before.</summary>
    public static PeftModel FromConfig(string baseDir, string configPath, long seed, out LoadReport report)
    {
        var config = AdapterConfig.Load(configPath) with { InferenceMode = false };
        var baseModel = ModelLoader.Load(baseDir, out report);
        try
        {
            CheckTask(config, baseModel);
            return PeftModel.Create(baseModel, config, seed);
        }
        catch { baseModel.Dispose(); throw; }
    }

    /// <summary>task_type CAUSAL_LM needs a decoder-only base, SEQ_2_SEQ_LM an encoder-decoder (unset: not checked).</summary>
    public static void CheckTask(AdapterConfig config, PretrainedModel baseModel) => CheckTask(config, baseModel.Architecture);

    public static void CheckTask(AdapterConfig config, Architecture architecture)
    {
        var expected = architecture.Config.IsEncoderDecoder ? AdapterConfig.Seq2SeqLm : AdapterConfig.CausalLm;
        if (config.TaskType is { } task && task != expected)
            throw new PeftOnnxException($"{config.SourcePath}: task_type {task} does not fit the base model {architecture.ClassName} (expected {expected}); is this adapter for another base model?");
    }
}
