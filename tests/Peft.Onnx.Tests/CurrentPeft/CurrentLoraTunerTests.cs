using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Tests.Training;
using Peft.Onnx.Tests.Tuners;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.Lora;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.CurrentPeft;

/// <summary>DoRA, lora_bias and exclude_modules in the trainer against PEFT 0.13.2 / 0.20.0 on every family.</summary>
public class CurrentLoraTunerTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases => CurrentLoraCases.All;

    /// <summary>One load per case: names and counts, saved files, forward, generation, merge / unmerge, merge_and_unload.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void Adapter_matches_peft(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method, CurrentLoraCases.Dir(arch, method));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var tuner = Assert.IsType<LoraTuner>(model.Tuner);
        fixture.AssertTrainableParameters(tuner);
        TunerFixture.AssertSavesAsPeft(model, fixture.AdapterDir);

        var unmerged = fixture.Forward(model);
        fixture.AssertMatches(unmerged);
        fixture.AssertGenerates(model.Base);

        if (!CurrentLoraCases.PeftMerges(arch, method))
        {
            // PEFT refuses to merge a lora_B bias into a layer without one; so does the trainer, and nothing changes.
            var error = Assert.Throws<PeftOnnxException>(() => tuner.Merge());
            Assert.Contains("lora_bias", error.Message);
            TunerFixture.AssertSameLogits(unmerged.Logits, fixture.Forward(model).Logits, $"{arch}/{method} after the refused merge");
            return;
        }
        fixture.AssertMergeUnmergeKeepsLogits(model, tuner, unmerged.Logits, $"{arch}/{method}");

        var merged = tuner.MergeAndUnload();
        Assert.Empty(merged.Linears.Adapters);
        fixture.AssertMatches(fixture.Forward(merged), "logits_merged", "loss_merged");
        fixture.AssertGenerates(merged, "generated_merged");
    }

    [Theory, MemberData(nameof(Cases))]
    public void Training_steps_match_peft(string arch, string method) =>
        new TrainingParityTests(output).AssertTrainingMatches(arch, method, CurrentLoraCases.Dir(arch, method));

    [Theory, MemberData(nameof(Cases))]
    public void Trained_adapter_saves_as_peft_saved_it(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method, CurrentLoraCases.Dir(arch, method));
        using var trained = PeftModel.Load(fixture.BaseDir, fixture.TrainedAdapterDir);
        TunerFixture.AssertSavesAsPeft(trained, fixture.TrainedAdapterDir);
    }

    /// <summary>inspect's count (from the config alone) is print_trainable_parameters' for every case.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void Counts_match_print_trainable_parameters(string arch, string method)
    {
        var meta = Reference.MetaAt(CurrentLoraCases.Dir(arch, method)).GetProperty("counts");
        var arch_ = Architecture.For(ModelConfig.Load(CurrentLoraCases.BaseDir(arch)));
        var count = AdapterConfig.Load(CurrentLoraCases.AdapterDir(arch, method)).CountParameters(arch_);
        Assert.Equal(meta.GetProperty("trainable").GetInt64(), count.Trainable);
        Assert.Equal(meta.GetProperty("all").GetInt64(), count.All);
    }

    [Fact]
    public void A_new_dora_adapter_starts_as_the_base_model_with_the_weight_norms_as_magnitude()
    {
        using var fixture = new TunerFixture("gpt2", "lora_dora", CurrentLoraCases.Dir("gpt2", "lora_dora"));
        using var reference = Peft.Onnx.Core.SafeTensors.SafeTensorsFile.Open(Path.Combine(Paths.Case("gpt2"), "base_reference.safetensors"));
        var config = (LoraConfig)AdapterConfig.Load(fixture.AdapterDir) with { InferenceMode = false };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 0);
        using var scope = NewDisposeScope();
        var layer = ((LoraTuner)model.Tuner).Layers[0];
        var weight = model.Base.Linears[layer.Path].Weight;
        var norms = linalg.vector_norm(weight, dims: [1]);
        Assert.Equal(0f, (layer.Magnitude! - norms).abs().max().item<float>(), 6);
        var logits = fixture.Forward(model).Logits.contiguous().data<float>().ToArray();
        Tolerance.AssertLogits(reference.ReadFloat32("logits"), logits, 1000, Tolerance.RowsFromMask(fixture.Inputs.Inputs.ReadInt64("attention_mask")), "fresh DoRA");
    }

    [Fact]
    public void A_lora_bias_adapter_trains_and_saves_the_bias_of_lora_B()
    {
        using var baseModel = ModelLoader.Load(CurrentLoraCases.BaseDir("opt"));
        var config = new LoraConfig { R = 2, TargetModules = TargetModules.FromNames(["q_proj"]), HasLoraBias = true };
        using var tuner = new LoraTuner(baseModel, config);
        Assert.All(tuner.Layers, l => Assert.Equal(0f, l.BBias!.abs().max().item<float>()));
        var state = tuner.AdapterStateDict();
        Assert.Contains("base_model.model.model.decoder.layers.0.self_attn.q_proj.lora_B.bias", state.Keys);
        Assert.Contains(tuner.TrainableParameters, p => p.Name == "base_model.model.model.decoder.layers.0.self_attn.q_proj.lora_B.default.bias");
        foreach (var t in state.Values) t.Dispose();
    }
}
