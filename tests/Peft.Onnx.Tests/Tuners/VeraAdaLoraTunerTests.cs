using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.AdaLora;
using Peft.Onnx.Trainer.Tuners.Vera;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>VeRA and AdaLoRA against current PEFT (tests/fixtures/peft-current): counts, forward and loss, merge, generation, saved files.</summary>
public class VeraAdaLoraTunerTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var arch in Paths.Archs)
            foreach (var method in new[] { "vera", "adalora" })
                data.Add(arch, method);
        return data;
    }

    /// <summary>One load per case: names, counts, saved files, forward (AdaLoRA's loss with its regulariser), generation, merge.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void Adapter_matches_peft(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method, Paths.CurrentCase(arch, method));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var tuner = Assert.IsAssignableFrom<IMergeableTuner>(model.Tuner);
        Assert.IsType(method == "vera" ? typeof(VeraTuner) : typeof(AdaLoraTuner), tuner);
        fixture.AssertTrainableParameters(tuner);
        TunerFixture.AssertSavesAsPeft(model, fixture.AdapterDir);

        var unmerged = fixture.Forward(model);
        fixture.AssertMatches(unmerged);
        fixture.AssertGenerates(model.Base);

        tuner.Merge();
        TunerFixture.AssertSameLogits(unmerged.Logits, fixture.Forward(model).Logits, $"{arch}/{method} merged forward");
        tuner.Unmerge();
        TunerFixture.AssertSameLogits(unmerged.Logits, fixture.Forward(model).Logits, $"{arch}/{method} unmerged forward");

        var merged = tuner.MergeAndUnload();
        Assert.Empty(merged.Linears.Adapters);
        fixture.AssertMatches(fixture.Forward(merged), "logits_merged", "loss_merged");
        fixture.AssertGenerates(merged, "generated_merged");
    }

    [Theory, MemberData(nameof(Cases))]
    public void Counts_equal_print_trainable_parameters(string arch, string method)
    {
        var meta = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Paths.CurrentCase(arch, method), "meta.json"))).RootElement;
        var config = AdapterConfig.Load(Paths.CurrentCase(arch, method + "/adapter"));
        var counts = ParameterCount.Count(Architecture.For(ModelConfig.Load(Paths.Case(arch, "base_model"))), config);
        Assert.Equal(meta.GetProperty("counts").GetProperty("trainable").GetInt64(), counts.Trainable);
        Assert.Equal(meta.GetProperty("counts").GetProperty("all").GetInt64(), counts.All);
    }

    [Theory, MemberData(nameof(Cases))]
    public void Trained_adapter_saves_as_peft_saved_it(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method, Paths.CurrentCase(arch, method));
        using var trained = PeftModel.Load(fixture.BaseDir, fixture.TrainedAdapterDir);
        TunerFixture.AssertSavesAsPeft(trained, fixture.TrainedAdapterDir);
    }

    [Theory]
    [InlineData("opt")]
    [InlineData("gpt2")]
    public void Vera_projections_are_drawn_as_peft_draws_them_from_the_prng_key(string arch)
    {
        using var fixture = new TunerFixture(arch, "vera", Paths.CurrentCase(arch, "vera"));
        var config = (VeraConfig)AdapterConfig.Load(fixture.AdapterDir);
        using var saved = SafeTensorsFile.Open(Path.Combine(fixture.AdapterDir, AdapterFormat.WeightsFile));
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 1);
        var state = model.Tuner.AdapterStateDict();
        foreach (var key in new[] { VeraConfig.SharedAKey, VeraConfig.SharedBKey })
            Assert.Equal(saved.ReadFloat32(key), state[key].data<float>().ToArray());
        // a fresh adapter is the identity: lambda_b starts at zero
        var layer = ((VeraTuner)model.Tuner).Layers[0];
        Assert.True(layer.DeltaWeight().eq(0).all().item<bool>());
        Assert.True(layer.LambdaD.eq((float)config.DInitial).all().item<bool>());
    }

    [Fact]
    public void Adalora_delta_is_b_times_a_scaled_by_e_over_the_rank()
    {
        using var fixture = new TunerFixture("bloom", "adalora", Paths.CurrentCase("bloom", "adalora"));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var layer = ((AdaLoraTuner)model.Tuner).Layers[0];
        Assert.Equal(4f, layer.RankNum);
        var expected = layer.B.matmul(layer.A * layer.E) * (8.0 / (4 + 1e-5));
        Assert.True(layer.DeltaWeight().allclose(expected, 1e-6, 1e-7));
    }

    [Fact]
    public void Adalora_loss_adds_the_orthogonal_regulariser_and_the_merged_model_does_not()
    {
        var meta = Reference.MetaAt(Paths.CurrentCase("opt", "adalora"));
        var difference = meta.GetProperty("checks").GetProperty("loss_minus_loss_merged").GetDouble();
        using var fixture = new TunerFixture("opt", "adalora", Paths.CurrentCase("opt", "adalora"));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var regulariser = ((AdaLoraTuner)model.Tuner).Regularizer();
        Assert.Equal(difference, regulariser.item<float>(), 1e-4);
        Assert.True(difference > 0.01);
    }
}
