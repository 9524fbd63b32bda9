using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.Ia3;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>IA3 against PEFT 0.7.1: forward, merge, generation and the saved files of every reference case.</summary>
public class Ia3TunerTests
{
    public static TheoryData<string> Archs => new(Paths.Archs);

    /// <summary>One load per case: names, saved files, forward, generation, merge / unmerge, merge_and_unload.</summary>
    [Theory, MemberData(nameof(Archs))]
    public void Adapter_matches_peft(string arch)
    {
        using var fixture = new TunerFixture(arch, "ia3");
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var tuner = Assert.IsType<Ia3Tuner>(model.Tuner);
        fixture.AssertTrainableParameters(tuner);
        TunerFixture.AssertSavesAsPeft(model, fixture.AdapterDir);

        var unmerged = fixture.Forward(model);
        fixture.AssertMatches(unmerged);
        fixture.AssertGenerates(model.Base);

        fixture.AssertMergeUnmergeKeepsLogits(model, tuner, unmerged.Logits, $"{arch}/ia3");

        var merged = tuner.MergeAndUnload();
        Assert.Empty(merged.Linears.Adapters);
        fixture.AssertMatches(fixture.Forward(merged), "logits_merged", "loss_merged");
        fixture.AssertGenerates(merged, "generated_merged");
        fixture.AssertMergedWeightsMatch(merged);
    }

    [Theory, MemberData(nameof(Archs))]
    public void First_step_gradients_match_peft(string arch)
    {
        using var fixture = new TunerFixture(arch, "ia3");
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        fixture.AssertFirstStepGradients(model);
    }

    [Theory, MemberData(nameof(Archs))]
    public void Trained_adapter_saves_as_peft_saved_it(string arch)
    {
        using var fixture = new TunerFixture(arch, "ia3");
        using var trained = PeftModel.Load(fixture.BaseDir, fixture.TrainedAdapterDir);
        TunerFixture.AssertSavesAsPeft(trained, fixture.TrainedAdapterDir);
    }

    [Fact]
    public void Merge_scales_rows_and_bias_of_output_targets_and_columns_of_feedforward_targets()
    {
        // OPT: q_proj (output side) and fc2 (feed-forward) both have a bias.
        using var fixture = new TunerFixture("opt", "ia3");
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var tuner = (Ia3Tuner)model.Tuner;
        var q = tuner.Layers.First(l => l.Path.EndsWith("0.self_attn.q_proj", StringComparison.Ordinal));
        var fc2 = tuner.Layers.First(l => l.Path.EndsWith("0.fc2", StringComparison.Ordinal));
        Assert.Equal([64L, 1], q.Scale.shape);
        Assert.Equal([1L, 128], fc2.Scale.shape);
        var qLayer = model.Base.Linears[q.Path];
        var fcLayer = model.Base.Linears[fc2.Path];
        var (qW, qB, fW, fB) = (qLayer.Weight.clone(), qLayer.Bias!.clone(), fcLayer.Weight.clone(), fcLayer.Bias!.clone());

        tuner.Merge();
        Assert.True(qLayer.Weight.allclose(qW * q.Scale, 0, 0));
        Assert.True(qLayer.Bias!.allclose(qB * q.Scale.flatten(), 0, 0));
        Assert.True(fcLayer.Weight.allclose(fW * fc2.Scale, 0, 0));
        Assert.True(fcLayer.Bias!.allclose(fB, 0, 0));

        tuner.Unmerge();
        Assert.True(qLayer.Weight.allclose(qW, 1e-5, 1e-7));
        Assert.True(qLayer.Bias!.allclose(qB, 1e-5, 1e-7));
        Assert.True(fcLayer.Weight.allclose(fW, 1e-5, 1e-7));
    }

    [Fact]
    public void A_new_adapter_starts_as_the_base_model_unless_init_ia3_weights_is_false()
    {
        using var fixture = new TunerFixture("bloom", "ia3");
        using var reference = SafeTensorsFile.Open(Path.Combine(Paths.Case("bloom"), "base_reference.safetensors"));
        var config = (Ia3Config)AdapterConfig.Load(fixture.AdapterDir);
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config))
        {
            Assert.All(((Ia3Tuner)model.Tuner).Layers, l => Assert.True(l.Scale.eq(1).all().item<bool>()));
            var logits = fixture.Forward(model).Logits.contiguous().data<float>().ToArray();
            Tolerance.AssertLogits(reference.ReadFloat32("logits"), logits, 1000, Tolerance.RowsFromMask(fixture.Inputs.Inputs.ReadInt64("attention_mask")), "fresh IA3");
        }
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config with { InitIa3Weights = false }, seed: 1))
            Assert.All(((Ia3Tuner)model.Tuner).Layers, l => Assert.False(l.Scale.eq(1).all().item<bool>()));
    }

    [Fact]
    public void An_adapter_whose_vectors_sit_on_the_other_side_fails_naming_the_tensor_and_both_shapes()
    {
        // Declaring no feed-forward module puts mlp.c_proj's vector on its output ([64, 1]) instead of its input.
        using var fixture = new TunerFixture("gpt2", "ia3");
        var config = (Ia3Config)AdapterConfig.Load(fixture.AdapterDir) with { FeedforwardModules = TargetModules.FromNames([]) };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config);
        var error = Assert.Throws<PeftOnnxException>(() => model.LoadAdapter(fixture.AdapterDir));
        Assert.Contains("tensor 'base_model.model.transformer.h.0.mlp.c_proj.ia3_l' has shape [1, 256] but the base model needs [64, 1]", error.Message);
    }
}
