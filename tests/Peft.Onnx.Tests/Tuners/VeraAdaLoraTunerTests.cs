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

/// <summary>What only VeRA and AdaLoRA have (shared projections, the SVD delta, the regulariser); the checks every current-PEFT method shares are CurrentMethodTunerTests.</summary>
public class VeraAdaLoraTunerTests
{
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
