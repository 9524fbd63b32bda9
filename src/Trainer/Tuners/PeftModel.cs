using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.Ia3;
using Peft.Onnx.Trainer.Tuners.AdaLora;
using Peft.Onnx.Trainer.Tuners.LoHa;
using Peft.Onnx.Trainer.Tuners.Vera;
using Peft.Onnx.Trainer.Tuners.LoKr;
using Peft.Onnx.Trainer.Tuners.Lora;
using Peft.Onnx.Trainer.Tuners.Oft;
using Peft.Onnx.Trainer.Tuners.Boft;
using Peft.Onnx.Trainer.Tuners.Hra;
using Peft.Onnx.Trainer.Tuners.FourierFt;
using Peft.Onnx.Trainer.Tuners.PrefixTuning;
using Peft.Onnx.Trainer.Tuners.PromptTuning;
using Peft.Onnx.Trainer.Tuners.PTuning;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>
/// A base model with one adapter attached (PEFT's PeftModel): forward runs the tuner's input preparation
/// and then the base model, whose linear modules the tuner may have wrapped. Owns both.
/// </summary>
public sealed class PeftModel : IDisposable
{
    private PeftModel(PretrainedModel baseModel, ITuner tuner)
    {
        Base = baseModel;
        Tuner = tuner;
    }

    public PretrainedModel Base { get; }
    public ITuner Tuner { get; }
    public AdapterConfig Config => Tuner.Config;

    /// <summary>
    /// Attaches a new adapter initialised as PEFT does (get_peft_model); <paramref name="seed"/> seeds torch
    /// right before, like torch.manual_seed(seed) before get_peft_model.
    /// </summary>
    public static PeftModel Create(PretrainedModel baseModel, AdapterConfig config, long? seed = null)
    {
        if (seed is { } s) random.manual_seed(s);
        return new PeftModel(baseModel, CreateTuner(baseModel, config));
    }

    /// <summary>Loads base + saved adapter (PeftModel.from_pretrained).</summary>
    public static PeftModel Load(string baseDir, string adapterDir)
    {
        var config = AdapterConfig.Load(adapterDir);
        // The adapter file against the base's config, before libtorch allocates anything for either.
        AdapterFit.Check(config, Architecture.For(ModelConfig.Load(baseDir)), adapterDir);
        var baseModel = ModelLoader.Load(baseDir);
        try
        {
            var model = Create(baseModel, config);
            model.LoadAdapter(adapterDir);
            return model;
        }
        catch { baseModel.Dispose(); throw; }
    }

    private static ITuner CreateTuner(PretrainedModel baseModel, AdapterConfig config)
    {
        AdapterFit.CheckModuleSize(config, baseModel.Architecture);
        return NewTuner(baseModel, config);
    }

    private static ITuner NewTuner(PretrainedModel baseModel, AdapterConfig config) => config switch
    {
        LoraConfig c => new LoraTuner(baseModel, c),
        Ia3Config c => new Ia3Tuner(baseModel, c),
        LoHaConfig c => new LoHaTuner(baseModel, c),
        LoKrConfig c => new LoKrTuner(baseModel, c),
        VeraConfig c => new VeraTuner(baseModel, c),
        AdaLoraConfig c => new AdaLoraTuner(baseModel, c),
        OftConfig c => new OftTuner(baseModel, c),
        BoftConfig c => new BoftTuner(baseModel, c),
        HraConfig c => new HraTuner(baseModel, c),
        FourierFtConfig c => new FourierFtTuner(baseModel, c),
        PromptTuningConfig c => new PromptTuner(baseModel, c),
        PromptEncoderConfig c => new PromptEncoderTuner(baseModel, c),
        PrefixTuningConfig c => new PrefixTuner(baseModel, c),
        _ => throw new PeftOnnxException($"{config.SourcePath}: peft_type '{config.PeftType}' has no trainer implementation"),
    };

    public LmOutput Forward(CausalLmInput input) => Regularized(Base switch
    {
        CausalLm lm => lm.Forward(Tuner.PrepareCausal(input)),
        _ => throw new PeftOnnxException($"{Base.Architecture.ClassName} is not a causal LM"),
    });

    public LmOutput Forward(Seq2SeqLmInput input) => Regularized(Base switch
    {
        Seq2SeqLm s2s => s2s.Forward(Tuner.PrepareSeq2Seq(input)),
        _ => throw new PeftOnnxException($"{Base.Architecture.ClassName} is not an encoder-decoder"),
    });

    /// <summary>The method's loss term added whenever the base computed a loss (labels given), as PEFT's model forward adds it.</summary>
    private LmOutput Regularized(LmOutput output)
    {
        if (output.Loss is not { } loss || Tuner is not IRegularizedTuner regularized) return output;
        using var term = regularized.Regularizer();
        var total = loss.Plus(term);
        loss.Dispose();
        return output with { Loss = total };
    }

    /// <summary>Reads adapter_model.safetensors from a folder into the attached tuner.</summary>
    public void LoadAdapter(string adapterDir) => AdapterFiles.LoadInto(Tuner, Base.Architecture, adapterDir);

    /// <summary>save_pretrained: adapter_config.json (inference_mode true) + adapter_model.safetensors, each atomic.</summary>
    public void Save(string dir) => AdapterFiles.Save(Tuner, dir);

    public void Dispose()
    {
        Tuner.Dispose();
        Base.Dispose();
    }
}
