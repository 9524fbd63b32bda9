using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.Boft;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>
/// What only BOFT has (butterfly permutations, Cayley blocks, the output scale, init, block dropout); the checks every
/// current-PEFT method shares are CurrentMethodTunerTests.
/// </summary>
public class BoftTunerTests
{
    [Fact]
    public void A_new_adapter_starts_as_the_base_model_unless_init_weights_is_false()
    {
        using var fixture = new TunerFixture("opt", "boft", Paths.CurrentCase("opt", "boft"));
        using var reference = SafeTensorsFile.Open(Path.Combine(Paths.Case("opt"), "base_reference.safetensors"));
        var config = (BoftConfig)AdapterConfig.Load(fixture.AdapterDir);
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 1))
        {
            var layer = ((BoftTuner)model.Tuner).Layers[0];
            Assert.True(layer.R.eq(0).all().item<bool>());
            Assert.True(layer.S.eq(1).all().item<bool>());
            var logits = fixture.Forward(model).Logits.contiguous().data<float>().ToArray();
            Tolerance.AssertLogits(reference.ReadFloat32("logits"), logits, 1000, Tolerance.RowsFromMask(fixture.Inputs.Inputs.ReadInt64("attention_mask")), "fresh boft");
        }
        using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config with { InitWeights = false }, seed: 1))
        {
            var layer = ((BoftTuner)model.Tuner).Layers[0];
            Assert.InRange(layer.R.std().item<float>(), 0.07f, 0.13f);
            Assert.InRange(layer.S.mean().item<float>(), 0.95f, 1.05f);
            Assert.InRange(layer.S.std().item<float>(), 0.07f, 0.13f);
        }
    }

    /// <summary>Factor 1 against the boft_P PEFT built (the identity); more factors against the permutations worked out by hand from block_butterfly_perm.</summary>
    [Fact]
    public void Butterfly_permutations_are_peft_s()
    {
        using var reference = SafeTensorsFile.Open(Path.Combine(Paths.CurrentCase("llama", "boft"), "reference.safetensors"));
        var p = reference.ReadFloat32("buffers.base_model.model.model.layers.0.self_attn.q_proj.boft_P");
        var perm = BoftButterfly.Permutation(64, 8, 0, 1);
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 64; j++) Assert.Equal(perm[i] == j ? 1f : 0f, p[i * 64 + j]);

        // 8 features in blocks of 2, two factors: factor 1 takes the halves (single features) of each group of 4 as 0, 2, 1, 3
        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7], BoftButterfly.Permutation(8, 2, 0, 2));
        Assert.Equal([0, 2, 1, 3, 4, 6, 5, 7], BoftButterfly.Permutation(8, 2, 1, 2));
        // 16 in blocks of 2, three factors: factor 2 reorders groups of 8 as evens then odds
        Assert.Equal([0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15], BoftButterfly.Permutation(16, 2, 2, 3));
        // 64 in blocks of 8, two factors: groups of 16, half-blocks of 4 taken as chunks 0, 2, 1, 3
        int[] chunks = [0, 2, 1, 3];
        var expected = Enumerable.Range(0, 64).Select(k => k / 16 * 16 + chunks[k % 16 / 4] * 4 + k % 4).ToArray();
        Assert.Equal(expected, BoftButterfly.Permutation(64, 8, 1, 2));
    }

    /// <summary>The blocks against (I - S)(I + S)^-1 written with libtorch's inverse, and the Core arithmetic the export uses.</summary>
    [Fact]
    public void Blocks_are_the_cayley_transform_of_the_skew_part()
    {
        using var fixture = new TunerFixture("bloom", "boft", Paths.CurrentCase("bloom", "boft"));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var layer = ((BoftTuner)model.Tuner).Layers[0];
        Assert.Equal((1, 8, 8), (layer.Factors, layer.Blocks, layer.BlockSize));
        var a = layer.R[0, 3].to(float64);
        var s = (a - a.t()) / 2;
        var expected = (eye(8, dtype: float64) - s).matmul(linalg.inv(eye(8, dtype: float64) + s));
        var block = layer.CayleyBlocks()[3].to(float64);
        Assert.True(block.allclose(expected, 1e-5, 1e-6));
        Assert.True(block.matmul(block.t()).allclose(eye(8, dtype: float64), 1e-5, 1e-5));

        var core = new BoftRotation(layer.R.contiguous().data<float>().ToArray(), 1, 8, 8, 64);
        Assert.True(tensor(core.Block(0, 3), [8, 8]).allclose(expected, 1e-12, 1e-12));
    }

    /// <summary>
    /// Two factors (which PEFT computes with its CUDA extension only): R = P_1 B_1 P_1^T B_0 with P_1 as the dense 0/1
    /// matrix of perm2mat, orthogonal, and the Core rotation (row @ R^T) gives the same columns; merge and unmerge hold.
    /// </summary>
    [Fact]
    public void Two_butterfly_factors_chain_the_permuted_block_diagonals()
    {
        using var fixture = new TunerFixture("opt", "boft", Paths.CurrentCase("opt", "boft"));
        var config = (BoftConfig)AdapterConfig.Load(fixture.AdapterDir) with { BoftNButterflyFactor = 2, InitWeights = false };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 3);
        using var scope = NewDisposeScope();
        var layer = ((BoftTuner)model.Tuner).Layers[0];
        Assert.Equal(new long[] { 2, 8, 8, 8 }, layer.R.shape);
        var blocks = layer.CayleyBlocks();
        var b0 = block_diag(Enumerable.Range(0, 8).Select(i => blocks[i]).ToArray());
        var b1 = block_diag(Enumerable.Range(8, 8).Select(i => blocks[i]).ToArray());
        var p1 = zeros(64, 64);
        var perm = BoftButterfly.Permutation(64, 8, 1, 2);
        for (int i = 0; i < 64; i++) p1[i, perm[i]] = tensor(1f);
        var expected = p1.matmul(b1).matmul(p1.t()).matmul(b0);
        var r = layer.RotationMatrix();
        Assert.True(r.allclose(expected, 1e-6, 1e-6));
        Assert.True(r.matmul(r.t()).allclose(eye(64), 1e-5, 1e-5));
        Assert.False(r.allclose(b0.matmul(b1), 1e-3, 1e-3));

        var core = new BoftRotation(layer.R.contiguous().data<float>().ToArray(), 2, 8, 8, 64);
        var row = new double[64];
        row[11] = 1;
        core.Rotate(row);
        Assert.True(tensor(row).allclose(r[TensorIndex.Colon, 11].to(float64), 1e-5, 1e-6));

        var tuner = Assert.IsAssignableFrom<IMergeableTuner>(model.Tuner);
        var unmerged = fixture.Forward(model).Logits;
        fixture.AssertMergeUnmergeKeepsLogits(model, tuner, unmerged, "boft factor 2");
    }

    [Fact]
    public void Training_with_boft_dropout_is_refused_naming_the_key()
    {
        using var fixture = new TunerFixture("opt", "boft", Paths.CurrentCase("opt", "boft"));
        var config = (BoftConfig)AdapterConfig.Load(fixture.AdapterDir) with { BoftDropout = 0.1 };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config);
        model.Base.Training = true;
        var error = Assert.Throws<PeftOnnxException>(() => fixture.Forward(model));
        Assert.Contains("boft_dropout = 0.1 is not supported for training BOFT adapters", error.Message);
        model.Base.Training = false;
        fixture.Forward(model);
    }

    /// <summary>Butterfly factors that do not fit the block count or size, on a base with 64 inputs per target.</summary>
    [Theory]
    [InlineData("\"boft_block_size\": 0, \"boft_block_num\": 2, \"boft_n_butterfly_factor\": 3", "boft_block_num = 2 does not fit boft_n_butterfly_factor = 3 (expected a multiple of 2^2 = 4)")]
    [InlineData("\"boft_block_size\": 0, \"boft_block_num\": 6, \"boft_n_butterfly_factor\": 1", "boft_block_num = 6 does not divide in_features 64 of 'model.decoder.layers.0.self_attn.q_proj' (expected a divisor of 64)")]
    [InlineData("\"boft_block_size\": 1, \"boft_block_num\": 0, \"boft_n_butterfly_factor\": 2", "boft_n_butterfly_factor = 2 needs an even block count and size, but in_features 64 of 'model.decoder.layers.0.self_attn.q_proj' gives 64 blocks of 1")]
    public void Butterfly_factors_that_do_not_fit_are_refused(string keys, string expected)
    {
        var dir = Paths.TempDir("peft-onnx-boft-factor");
        try
        {
            File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), $$"""{"peft_type": "BOFT", {{keys}}, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}""");
            SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), [], AdapterFormat.WeightsMetadata);
            var ex = Assert.Throws<PeftOnnxException>(() => PeftModelSource.FromAdapter(Paths.Case("opt", "base_model"), dir, out _, inferenceMode: true).Dispose());
            Assert.Contains(expected, ex.Message);
            Assert.Contains(dir, ex.Message);
            Assert.DoesNotContain('\n', ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// bias = "all" trains every parameter named *bias* and saves them as PEFT does ("{module}.base_layer.bias" on a
    /// wrapped layer), and the export takes them; "boft_only" trains the adapted layers' biases, which PEFT's
    /// get_peft_model_state_dict never saves (it looks for "{module}.bias"). Counts from the base checkpoint's own tensors.
    /// </summary>
    [Theory]
    [InlineData("all")]
    [InlineData("boft_only")]
    public void Base_biases_train_and_save_as_the_bias_setting_says(string bias)
    {
        const string qkvBias = "transformer.h.0.self_attention.query_key_value.bias";
        using var fixture = new TunerFixture("bloom", "boft", Paths.CurrentCase("bloom", "boft"));
        var config = (BoftConfig)AdapterConfig.Load(fixture.AdapterDir) with { Bias = bias, InitWeights = false, InferenceMode = false };
        using var checkpoint = SafeTensorsFile.Open(Path.Combine(fixture.BaseDir, "model.safetensors"));
        var biasTensors = checkpoint.Names.Where(n => bias == "all" ? n.Contains("bias", StringComparison.Ordinal) : n.EndsWith("query_key_value.bias", StringComparison.Ordinal)).ToList();
        long biasCount = biasTensors.Sum(n => checkpoint[n].Shape.Aggregate(1L, (a, b) => a * b));
        Assert.Equal(1408 + biasCount, ParameterCount.Count(Architecture.For(ModelConfig.Load(fixture.BaseDir)), config).Trainable);

        var dir = Paths.TempDir("peft-onnx-boft-bias");
        var onnxDir = TempExports.FreshPath();
        try
        {
            float[] trainedLogits;
            using (var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 5))
            {
                var trainable = model.Tuner.TrainableParameters;
                Assert.Equal(1408 + biasCount, trainable.Sum(p => p.Parameter.numel()));
                Assert.Contains(trainable, p => p.Name == "base_model.model.transformer.h.0.self_attention.query_key_value.base_layer.bias");
                Assert.Equal(bias == "all", trainable.Any(p => p.Name == "base_model.model.transformer.h.0.input_layernorm.bias"));
                model.Base.Training = true;
                using (var sgd = new Sgd(trainable, new SgdOptions(0.5)))
                {
                    var batch = fixture.Inputs.Inputs;
                    var input = new CausalLmInput(tensor(batch.ReadInt64("input_ids"), fixture.Inputs.Shape("input_ids")),
                        tensor(batch.ReadInt64("attention_mask"), fixture.Inputs.Shape("attention_mask")), Labels: tensor(batch.ReadInt64("labels"), fixture.Inputs.Shape("labels")));
                    model.Forward(input).Loss!.backward();
                    sgd.Step();
                }
                model.Base.Training = false;
                var qkv = model.Base.Parameters[qkvBias].contiguous().data<float>().ToArray();
                Assert.NotEqual(checkpoint.ReadFloat32(qkvBias), qkv);
                trainedLogits = fixture.Forward(model).Logits.contiguous().data<float>().ToArray();
                model.Save(dir);
            }
            using (var saved = SafeTensorsFile.Open(Path.Combine(dir, AdapterFormat.WeightsFile)))
            {
                var expectedKeys = Enumerable.Range(0, 2).SelectMany(i => new[] { "boft_R", "boft_s" }.Select(a => $"base_model.model.transformer.h.{i}.self_attention.query_key_value.{a}"));
                if (bias == "all")
                    expectedKeys = expectedKeys.Concat(biasTensors.Select(n => "base_model.model." + (n.EndsWith("query_key_value.bias", StringComparison.Ordinal) ? n.Replace(".bias", ".base_layer.bias", StringComparison.Ordinal) : n)));
                Assert.Equal(expectedKeys.Order(StringComparer.Ordinal), saved.Names.Order(StringComparer.Ordinal));
            }
            using (var reloaded = PeftModel.Load(fixture.BaseDir, dir))
            {
                var logits = fixture.Forward(reloaded).Logits.contiguous().data<float>().ToArray();
                if (bias == "all") Assert.Equal(trainedLogits, logits);
                else Assert.NotEqual(trainedLogits, logits);
            }
            if (bias == "all")
            {
                OnnxExport.Export(fixture.BaseDir, dir, onnxDir, new ExportOptions());
                var exported = AdapterExportParity.FixtureLogits("bloom", onnxDir);
                Tolerance.AssertLogits(trainedLogits, exported, 1000, Tolerance.RowsFromMask(fixture.Inputs.Inputs.ReadInt64("attention_mask")), "boft bias all export");
            }
        }
        finally
        {
            Directory.Delete(dir, true);
            if (Directory.Exists(onnxDir)) Directory.Delete(onnxDir, true);
        }
    }
}
