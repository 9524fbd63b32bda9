using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.LoHa;
using Peft.Onnx.Trainer.Tuners.LoKr;
using Peft.Onnx.Trainer.Tuners.Lycoris;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>What only LoHa and LoKr have (their deltas, factorization, init, refusals); the checks every current-PEFT method shares are CurrentMethodTunerTests.</summary>
public class LycorisTunerTests
{
    [Theory]
    [InlineData("loha")]
    [InlineData("lokr")]
    public void A_new_adapter_starts_as_the_base_model_unless_init_weights_is_false(string method)
    {
        using var fixture = new TunerFixture("opt", method, Paths.CurrentCase("opt", method));
        using var reference = SafeTensorsFile.Open(Path.Combine(Paths.Case("opt"), "base_reference.safetensors"));
        var config = (LycorisConfig)AdapterConfig.Load(fixture.AdapterDir);
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 1))
        {
            var layers = ((IMergeableTuner)model.Tuner) switch { LoHaTuner t => t.Layers.Cast<LycorisLayer>(), LoKrTuner t => t.Layers.Cast<LycorisLayer>(), _ => throw new InvalidOperationException() };
            Assert.All(layers, l => Assert.True(l.DeltaWeight().eq(0).all().item<bool>()));
            Assert.All(model.Tuner.TrainableParameters, p => Assert.True(p.Parameter.abs().sum().item<float>() > 0 || p.Name.Contains("w2_b") || p.Name.Contains("w1")));
            var logits = fixture.Forward(model).Logits.contiguous().data<float>().ToArray();
            Tolerance.AssertLogits(reference.ReadFloat32("logits"), logits, 1000, Tolerance.RowsFromMask(fixture.Inputs.Inputs.ReadInt64("attention_mask")), $"fresh {method}");
        }
        var random = config switch { LoHaConfig c => (AdapterConfig)(c with { InitWeights = false }), LoKrConfig c => c with { InitWeights = false }, _ => throw new InvalidOperationException() };
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), random, seed: 1))
            Assert.All(model.Tuner.TrainableParameters, p => Assert.False(p.Parameter.eq(0).all().item<bool>(), p.Name));
    }

    [Fact]
    public void Loha_delta_is_the_hadamard_product_of_two_low_rank_products_times_alpha_over_r()
    {
        using var fixture = new TunerFixture("bloom", "loha", Paths.CurrentCase("bloom", "loha"));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var layer = ((LoHaTuner)model.Tuner).Layers[0];
        Assert.Equal(2.0, layer.Scaling);
        var expected = (layer.W1A.matmul(layer.W1B) * layer.W2A.matmul(layer.W2B)) * 2.0;
        Assert.True(layer.DeltaWeight().allclose(expected, 0, 0));
    }

    [Fact]
    public void Lokr_delta_is_the_kronecker_product_of_its_factors()
    {
        using var fixture = new TunerFixture("bloom", "lokr", Paths.CurrentCase("bloom", "lokr"));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var layer = ((LoKrTuner)model.Tuner).Layers[0];
        // bloom's query_key_value [192, 64]: 192 = 12 x 16, 64 = 8 x 8; w2 (16 x 8) is factorised at r = 2.
        Assert.Equal(new LoKrFactors(2, 12, 16, 8, 8, UseW1: true, UseW2: false), layer.Factors);
        var p = layer.Parameters.ToDictionary(x => x.Attribute, x => x.Value);
        Assert.Equal(["lokr_w1", "lokr_w2_a", "lokr_w2_b"], p.Keys);
        var w1 = p["lokr_w1"];
        var w2 = p["lokr_w2_a"].matmul(p["lokr_w2_b"]);
        var delta = layer.DeltaWeight();
        Assert.Equal([192L, 64], delta.shape);
        // block (i, j) of kron(w1, w2) is w1[i, j] * w2
        for (int i = 0; i < 12; i += 5)
            for (int j = 0; j < 8; j += 3)
                Assert.True(delta[TensorIndex.Slice(i * 16, i * 16 + 16), TensorIndex.Slice(j * 8, j * 8 + 8)].allclose(w2 * w1[i, j], 1e-6, 1e-7));
    }

    [Theory]
    [InlineData(192, -1, 12, 16)]
    [InlineData(64, -1, 8, 8)]
    [InlineData(256, -1, 16, 16)]
    [InlineData(96, -1, 8, 12)]
    [InlineData(97, -1, 1, 97)]
    [InlineData(192, 4, 4, 48)]
    [InlineData(192, 5, 4, 48)]
    [InlineData(192, 64, 3, 64)]
    public void Factorization_follows_peft(int dimension, int factor, int m, int n) =>
        Assert.Equal((m, n), LoKrFactors.Factorization(dimension, factor));

    [Fact]
    public void Training_with_rank_or_module_dropout_is_refused_naming_the_key()
    {
        using var fixture = new TunerFixture("opt", "loha", Paths.CurrentCase("opt", "loha"));
        var config = (LoHaConfig)AdapterConfig.Load(fixture.AdapterDir) with { RankDropout = 0.1 };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config);
        model.Base.Training = true;
        var error = Assert.Throws<Peft.Onnx.Core.PeftOnnxException>(() => fixture.Forward(model));
        Assert.Contains("rank_dropout = 0.1 is not supported for training LOHA adapters", error.Message);
        model.Base.Training = false;
        fixture.Forward(model);
    }
}
