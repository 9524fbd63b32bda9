using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.Hra;
using Peft.Onnx.Trainer.Tuners.Oft;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>What only OFT (PEFT 0.14+ formulation) and HRA have (rotation blocks, reflections, init, refusals); the checks every
/// current-PEFT method shares are CurrentMethodTunerTests.
/// </summary>
public class OrthogonalTunerTests
{
    [Fact]
    public void A_new_adapter_starts_as_the_base_model_unless_init_weights_is_false()
    {
        using var fixture = new TunerFixture("opt", "oft", Paths.CurrentCase("opt", "oft"));
        using var reference = SafeTensorsFile.Open(Path.Combine(Paths.Case("opt"), "base_reference.safetensors"));
        var config = (OftConfig)AdapterConfig.Load(fixture.AdapterDir);
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 1))
        {
            Assert.All(model.Tuner.TrainableParameters, p => Assert.True(p.Parameter.eq(0).all().item<bool>(), p.Name));
            var logits = fixture.Forward(model).Logits.contiguous().data<float>().ToArray();
            Tolerance.AssertLogits(reference.ReadFloat32("logits"), logits, 1000, Tolerance.RowsFromMask(fixture.Inputs.Inputs.ReadInt64("attention_mask")), "fresh oft");
        }
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config with { InitWeights = false }, seed: 1))
            Assert.All(model.Tuner.TrainableParameters, p =>
            {
                var std = p.Parameter.std().item<float>();
                Assert.InRange(std, 0.07f, 0.13f);
            });
    }

    /// <summary>The blocks against the series written out with plain matrix products of Q = U - U^T.</summary>
    [Fact]
    public void Rotation_blocks_are_the_truncated_cayley_neumann_series_of_the_skew_matrix()
    {
        using var fixture = new TunerFixture("bloom", "oft", Paths.CurrentCase("bloom", "oft"));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var layer = ((OftTuner)model.Tuner).Layers[0];
        Assert.Equal(8, layer.BlockSize);
        Assert.Equal(8, layer.Blocks); // bloom's query_key_value has 64 inputs
        var row = layer.Weight[1].data<float>().ToArray();
        var u = zeros(8, 8);
        int k = 0;
        for (int i = 0; i < 8; i++)
            for (int j = i + 1; j < 8; j++) u[i, j] = tensor(row[k++]);
        var q = u - u.t();
        var q2 = q.matmul(q);
        var expected = eye(8) + 2 * q + 2 * q2 + 2 * q2.matmul(q) + q2.matmul(q2);
        Assert.True(layer.RotationBlocks()[1].allclose(expected, 1e-5, 1e-6));

        var core = OftRotation.Block(row, 0, 8, neumann: true, terms: 5);
        Assert.True(tensor(core.Select(v => (float)v).ToArray(), [8, 8]).allclose(expected, 1e-5, 1e-6));
    }

    [Fact]
    public void Exact_cayley_is_orthogonal_and_the_inverse_direction_of_the_series()
    {
        var weights = new float[28];
        for (int i = 0; i < weights.Length; i++) weights[i] = 0.01f * (i % 5 - 2);
        using var scope = NewDisposeScope();
        var exact = tensor(OftRotation.Block(weights, 0, 8, neumann: false, terms: 5), [8, 8]);
        Assert.True(exact.matmul(exact.t()).allclose(eye(8, dtype: float64), 1e-12, 1e-12));
        // (I - Q)(I + Q)^-1 is the transpose of the series' limit (I + Q)(I - Q)^-1; with small Q, 30 terms reach it.
        var series = tensor(OftRotation.Block(weights, 0, 8, neumann: true, terms: 30), [8, 8]);
        Assert.True(exact.t().allclose(series, 1e-9, 1e-9));
    }

    [Fact]
    public void Training_with_module_dropout_is_refused_naming_the_key()
    {
        using var fixture = new TunerFixture("opt", "oft", Paths.CurrentCase("opt", "oft"));
        var config = (OftConfig)AdapterConfig.Load(fixture.AdapterDir) with { ModuleDropout = 0.1 };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config);
        model.Base.Training = true;
        var error = Assert.Throws<Peft.Onnx.Core.PeftOnnxException>(() => fixture.Forward(model));
        Assert.Contains("module_dropout = 0.1 is not supported for training OFT adapters", error.Message);
        model.Base.Training = false;
        fixture.Forward(model);
    }

    [Fact]
    public void A_new_hra_adapter_starts_as_the_base_model_unless_init_weights_is_false()
    {
        using var fixture = new TunerFixture("opt", "hra", Paths.CurrentCase("opt", "hra"));
        using var reference = SafeTensorsFile.Open(Path.Combine(Paths.Case("opt"), "base_reference.safetensors"));
        var config = (HraConfig)AdapterConfig.Load(fixture.AdapterDir);
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 1))
        {
            var u = ((HraTuner)model.Tuner).Layers[0].U;
            // r = 4: two drawn columns, each repeated, so each pair of reflections cancels
            Assert.True(u[TensorIndex.Colon, 0].eq(u[TensorIndex.Colon, 1]).all().item<bool>());
            Assert.False(u[TensorIndex.Colon, 0].eq(u[TensorIndex.Colon, 2]).all().item<bool>());
            var logits = fixture.Forward(model).Logits.contiguous().data<float>().ToArray();
            Tolerance.AssertLogits(reference.ReadFloat32("logits"), logits, 1000, Tolerance.RowsFromMask(fixture.Inputs.Inputs.ReadInt64("attention_mask")), "fresh hra");
        }
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config with { InitWeights = false }, seed: 1))
        {
            var u = ((HraTuner)model.Tuner).Layers[0].U;
            Assert.False(u[TensorIndex.Colon, 0].eq(u[TensorIndex.Colon, 1]).all().item<bool>());
        }
    }

    /// <summary>H against the reflections written out one by one, its own inverse in reverse order, and the Core arithmetic the export uses.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Hra_reflection_is_the_product_of_householder_reflections(bool applyGs)
    {
        using var fixture = new TunerFixture("bloom", "hra", Paths.CurrentCase("bloom", "hra"));
        var config = (HraConfig)AdapterConfig.Load(fixture.AdapterDir) with { ApplyGs = applyGs };
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var loaded = ((HraTuner)model.Tuner).Layers[0];
        var layer = new HraLayer(loaded.Target, config, CPU);
        using (no_grad()) layer.U.copy_(loaded.U);
        var h = layer.Reflection();
        Assert.True(h.matmul(layer.Reflection(reverse: true)).allclose(eye(64), 1e-5, 1e-5));
        Assert.True(h.matmul(h.t()).allclose(eye(64), 1e-5, 1e-5));

        var expected = eye(64, dtype: float64);
        if (!applyGs)
            for (int i = 0; i < 4; i++)
            {
                var u = layer.U[TensorIndex.Colon, i].to(float64).view(-1, 1);
                expected = expected.matmul(eye(64, dtype: float64) - 2 * u.matmul(u.t()) / u.pow(2).sum());
            }
        else
        {
            var (q, _) = linalg.qr(layer.U.to(float64));
            expected = eye(64, dtype: float64) - 2 * q.matmul(q.t());
        }
        Assert.True(h.to(float64).allclose(expected, 1e-5, 1e-5));

        var u32 = layer.U.contiguous().data<float>().ToArray();
        var core = new HraReflections(u32, 64, 4, applyGs);
        var row = new double[64];
        row[5] = 1;
        core.Reflect(row);
        Assert.True(tensor(row).allclose(expected[5], 1e-6, 1e-6));
        layer.Dispose();
    }
}
